"""Start a new card file with a fresh, valid id (the `decks new` command)."""

from __future__ import annotations

from pathlib import Path

from generator.cards.model import CardType
from generator.cards.validate import CARD_ID, MAX_ID_LENGTH, PLACEHOLDER_QUESTION, PLACEHOLDER_TEXTS

__all__ = ["PLACEHOLDER_QUESTION", "ScaffoldError", "new_card"]

# Every template sentence is refused by the validator until it is replaced.
TEMPLATES: dict[CardType, str] = {
    "basic": "# {question}\n\n" + PLACEHOLDER_TEXTS[0] + "\n",
    "reversed": "# {question}\n\n" + PLACEHOLDER_TEXTS[1] + "\n",
    "cloze": "# {question}\n\n" + PLACEHOLDER_TEXTS[2] + "\n%\n" + PLACEHOLDER_TEXTS[3] + "\n",
}


class ScaffoldError(Exception):
    """The new card cannot be written; the message says why."""


def new_card(content_dir: Path, topic: str, slug: str, card_type: CardType, question: str) -> Path:
    """Write `content/<topic>/<slug>.md` with id `<topic>-<slug>`; never overwrite anything."""
    folder = content_dir / topic
    if not (folder / "topic.yaml").is_file():
        topics = sorted(p.parent.name for p in content_dir.glob("*/topic.yaml"))
        raise ScaffoldError(f"unknown topic '{topic}': choose one of {', '.join(topics) or '(none yet)'}")
    card_id = f"{topic}-{slug}"
    if not CARD_ID.match(card_id) or len(card_id) > MAX_ID_LENGTH:
        raise ScaffoldError(
            f"'{slug[:40]}' makes an invalid id: use lower-case words joined by '-', "
            f"at most {MAX_ID_LENGTH} characters with the topic"
        )
    path = folder / f"{slug}.md"
    if path.exists():
        raise ScaffoldError(f"{path} already exists")
    needle = f"\nid: {card_id}\n".encode()
    for other in content_dir.glob("*/*.md"):
        try:
            if needle in other.read_bytes():
                raise ScaffoldError(f"id '{card_id}' is already used by {other}")
        except OSError:
            continue  # an unreadable card is reported by 'decks check', not here
    type_line = "" if card_type == "basic" else f"type: {card_type}\n"
    front_matter = f"---\nid: {card_id}\ntags: [concept]\nsource: []\n{type_line}---\n"
    try:
        path.write_text(front_matter + TEMPLATES[card_type].replace("{question}", question), encoding="utf-8")
    except OSError as exc:
        raise ScaffoldError(f"cannot write {path}: {exc.strerror}") from exc
    return path
