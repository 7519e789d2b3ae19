"""Start a new card file with a fresh, valid id (the `decks new` command)."""

from __future__ import annotations

from pathlib import Path

from generator.model import CardType
from generator.validate import CARD_ID

TEMPLATES: dict[CardType, str] = {
    "basic": "# {question}\n\nThe answer: a direct sentence first, then at most a few bullets.\n",
    "reversed": "# {question}\n\nA short definition (the reverse card asks for the term).\n",
    "cloze": (
        "# {question}\n\nThe {{{{c1::hidden part}}}} of a fact worth remembering.\n"
        "%\nExtra notes shown on the answer side.\n"
    ),
}


class ScaffoldError(Exception):
    """The new card cannot be written; the message says why."""


def new_card(content_dir: Path, topic: str, slug: str, card_type: CardType, question: str) -> Path:
    """Write `content/<topic>/<slug>.md` with id `<topic>-<slug>`; never overwrite anything."""
    folder = content_dir / topic
    if not (folder / "topic.yaml").is_file():
        raise ScaffoldError(f"{folder} is not a topic folder (no topic.yaml)")
    card_id = f"{topic}-{slug}"
    if not CARD_ID.match(card_id):
        raise ScaffoldError(f"'{slug}' makes the invalid id '{card_id}': use lower-case words joined by '-'")
    path = folder / f"{slug}.md"
    if path.exists():
        raise ScaffoldError(f"{path} already exists")
    for other in content_dir.glob("*/*.md"):
        if f"\nid: {card_id}\n" in other.read_text(encoding="utf-8"):
            raise ScaffoldError(f"id '{card_id}' is already used by {other}")
    type_line = "" if card_type == "basic" else f"type: {card_type}\n"
    front_matter = f"---\nid: {card_id}\ntags: [concept]\nsource: []\n{type_line}---\n"
    path.write_text(front_matter + TEMPLATES[card_type].format(question=question), encoding="utf-8")
    return path
