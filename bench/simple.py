"""The straightforward baseline: Markdown cards to one .apkg per topic, in one process.

Python-Markdown with Pygments (CSS classes) and genanki; no validation, no
caching, no manifest. Usage: python bench/simple.py CONTENT_DIR OUT_DIR
"""

from __future__ import annotations

import html
import re
import sys
import zlib
from pathlib import Path

import genanki
import markdown
import yaml
from pygments.formatters import HtmlFormatter

MODEL = genanki.Model(
    1607392319,
    "Simple Benchmark Card",
    fields=[{"name": "Front"}, {"name": "Back"}],
    templates=[{"name": "Card 1", "qfmt": "{{Front}}", "afmt": '{{FrontSide}}<hr id="answer">{{Back}}'}],
    css=HtmlFormatter().get_style_defs(".codehilite"),
)
DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$", re.DOTALL)
INLINE_MATH = re.compile(r"(?<![\\$])\$(?=\S)(.+?)(?<=\S)\$")
FENCE_INFO = re.compile(r"^(```+\s*\w+)[^\n]*$", re.MULTILINE)  # '```python no-run: …' -> '```python'
FENCED_BLOCK = re.compile(r"(^```[^\n]*\n.*?^```$)", re.DOTALL | re.MULTILINE)


def render(text: str) -> str:
    """Markdown to HTML; math is stashed first so Markdown cannot touch it."""
    stash: list[str] = []

    def keep(html_text: str) -> str:
        stash.append(html_text)
        return f"@@MATH{len(stash) - 1}@@"

    pieces = FENCED_BLOCK.split(FENCE_INFO.sub(r"\1", text))
    for index in range(0, len(pieces), 2):  # prose only, never code
        prose = DISPLAY_MATH.sub(lambda m: keep(f"\\[{html.escape(m.group(1))}\\]"), pieces[index])
        pieces[index] = INLINE_MATH.sub(lambda m: keep(f"\\({html.escape(m.group(1))}\\)"), prose)
    converted = markdown.markdown(
        "".join(pieces),
        extensions=["fenced_code", "codehilite", "tables"],
        extension_configs={"codehilite": {"guess_lang": False}},
    )
    return re.sub(r"@@MATH(\d+)@@", lambda m: stash[int(m.group(1))], converted)


def build(content: Path, out: Path) -> int:
    """Write `out/<topic>.apkg` for every topic folder; return the number of notes."""
    out.mkdir(parents=True, exist_ok=True)
    deck_set = yaml.safe_load((content / "deckset.yaml").read_text(encoding="utf-8"))
    notes = 0
    for folder in sorted(p for p in content.iterdir() if (p / "topic.yaml").is_file()):
        topic = yaml.safe_load((folder / "topic.yaml").read_text(encoding="utf-8"))
        deck = genanki.Deck(genanki_id(folder.name), f"{deck_set['name']}::{topic['name']}", topic["description"])
        for card_path in sorted(folder.glob("*.md")):
            _, front_matter, body = card_path.read_text(encoding="utf-8").split("---\n", 2)
            meta = yaml.safe_load(front_matter)
            question, _, answer = body.lstrip().partition("\n")
            deck.add_note(
                genanki.Note(
                    model=MODEL,
                    fields=[render(question.removeprefix("# ")), render(answer)],
                    tags=[folder.name, *meta.get("tags", [])],
                    guid=genanki.guid_for(meta["id"]),
                )
            )
            notes += 1
        genanki.Package(deck).write_to_file(out / f"{folder.name}.apkg")
    return notes


def genanki_id(key: str) -> int:
    """A stable deck id from the topic key."""
    return 1 << 30 | zlib.crc32(key.encode()) >> 3


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: simple.py CONTENT_DIR OUT_DIR")
    build(Path(sys.argv[1]), Path(sys.argv[2]))
