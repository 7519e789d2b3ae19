"""Golden files: a handful of fixture cards and the exact HTML of their note fields.

Each card in tests/golden/cards/ is validated and rendered by the real pipeline
and compared with tests/golden/expected/<card>.html. A change to rendering
shows up as a diff of those files: after an intended change run
`pytest tests/test_golden.py --update-golden` and review `git diff tests/golden`.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from generator.apkg.notetype import note_types
from generator.cards.parse import parse_card_file
from generator.cards.render import render_card
from generator.cards.validate import validate_file

GOLDEN = Path(__file__).resolve().parent / "golden"
CARDS = sorted((GOLDEN / "cards").glob("*.md"))
TOPIC = "golden"  # the fixture cards' topic key, which they name as their source


def rendered_fields(card_path: Path) -> str:
    """The card's note fields as one reviewable text: each field's HTML under its name, then the media."""
    text = card_path.read_text(encoding="utf-8")
    parsed, problems = parse_card_file(card_path, text)
    assert parsed is not None, [p.format() for p in problems]
    card, problems = validate_file(parsed, TOPIC)
    assert card is not None, [p.format() for p in problems]
    rendered, problems = render_card(card)
    assert not problems, [p.format() for p in problems]
    field_names = note_types()[card.type].fields
    assert len(field_names) == len(rendered.fields)
    parts = [f"<!-- {card.id} ({card.type}) -->\n"]
    parts += [f"<!-- field {name} -->\n{value}\n" for name, value in zip(field_names, rendered.fields, strict=True)]
    parts += [f"<!-- media {media.name} ({len(media.data)} bytes) -->\n" for media in rendered.media]
    return "".join(parts)


def test_there_is_a_golden_card_of_each_kind() -> None:
    assert {path.stem for path in CARDS} >= {"code", "math", "cloze-math", "table", "image", "reversed"}
    expected = {path.stem for path in (GOLDEN / "expected").glob("*.html")}
    assert expected == {path.stem for path in CARDS}, "every card has one expected file, and nothing else is there"


@pytest.mark.parametrize("card_path", CARDS, ids=[path.stem for path in CARDS])
def test_rendering_matches_the_golden_file(card_path: Path, request: pytest.FixtureRequest) -> None:
    actual = rendered_fields(card_path)
    golden = GOLDEN / "expected" / f"{card_path.stem}.html"
    if request.config.getoption("--update-golden"):
        golden.write_text(actual, encoding="utf-8")
        return
    assert golden.is_file(), f"no golden file {golden.name}: run pytest tests/test_golden.py --update-golden"
    expected = golden.read_text(encoding="utf-8")
    if actual != expected:
        diff = difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            f"expected/{golden.name}",
            "rendered now",
        )
        pytest.fail(
            f"rendering of {card_path.name} changed:\n{''.join(diff)}\n"
            "if the change is intended: pytest tests/test_golden.py --update-golden, then review git diff tests/golden",
            pytrace=False,
        )
