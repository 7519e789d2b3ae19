"""The card schema: required keys, strict types, body layout, fences and cloze rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.cards.compile import check_unique_ids
from generator.cards.parse import parse_card_file
from generator.cards.validate import validate_file

PATH = Path("alpha/card.md")


def validate(text: str):
    parsed, problems = parse_card_file(PATH, text)
    assert parsed is not None and problems == []
    return validate_file(parsed, "alpha")


def messages(text: str) -> list[str]:
    card, problems = validate(text)
    assert card is None
    return [p.message for p in problems]


def test_basic_card_fields() -> None:
    card, problems = validate("---\nid: alpha-x\ntags: [b, a, a]\nsource: [s#1]\n---\n# Q *x*?\n\nAnswer.\n")
    assert problems == []
    assert (card.id, card.type, card.tags, card.sources) == ("alpha-x", "basic", ("a", "b"), ("s#1",))
    assert (card.front, card.back, card.front_line, card.back_line, card.id_line) == ("Q *x*?", "Answer.", 6, 8, 2)


def test_front_continues_up_to_percent_line() -> None:
    card, _ = validate("---\nid: a\ntags: []\n---\n# What prints?\n\n```python\nprint(1)\n```\n%\n1\n")
    assert card.front == "What prints?\n\n```python\nprint(1)\n```"
    assert (card.back, card.back_line) == ("1", 11)


def test_cloze_text_and_extra() -> None:
    card, _ = validate("---\nid: a\ntags: []\ntype: cloze\n---\n# Title\n\nX is {{c1::y}}.\n%\nMore.\n")
    assert (card.front, card.back) == ("Title\n\nX is {{c1::y}}.", "More.")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("---\nid: Alpha_X\ntags: []\n---\n# Q\n\nA\n", "invalid id 'Alpha_X'"),
        ("---\nid: a\ntags: x\n---\n# Q\n\nA\n", "'tags' must be a list"),
        ("---\nid: a\ntags: [Big Tag]\n---\n# Q\n\nA\n", "invalid tags entry 'Big Tag'"),
        ("---\nid: a\ntags: [leech]\n---\n# Q\n\nA\n", "tag 'leech' is reserved by Anki"),
        (
            "---\nid: a\ntags: []\nsource: [nohash]\n---\n# Q\n\nA\n",
            "source 'nohash' is neither a seed item nor this card's topic 'alpha'",
        ),
        ("---\nid: a\ntags: []\n---\n# Q\n\nSee {{c1::x}}\n", "cloze deletion in a card that is not a cloze card"),
        ("---\nid: a\ntags: []\n---\n# Q\n\n```\nx\n```\n", "code block has no language"),
        ("---\nid: a\ntags: []\n---\n# Q\n\n```python run\nx\n```\n", "unexpected text after the language: 'run'"),
        (
            "---\nid: a\ntags: []\ntype: cloze\n---\n# T\n\n```python\n{{c1::x}}\n```\n",
            "cloze deletions inside code blocks are not supported",
        ),
        ("---\nid: a\n---\n# Q\n\nA\n", "missing 'tags' in front matter"),
        (
            "---\nid: a\ntags: []\n---\n# Q\n\n```python\nprint(1)\n```\n\nIt prints:\n\n```output\n1\n```\n",
            "output block does not directly follow a python block, so it would never be checked",
        ),
        (
            "---\nid: a\ntags: []\ntype: cloze\n---\n# T\n\n{{c1::x}}\n%\n{{c2::y}}\n",
            "cloze deletion after the '%' line, where Anki shows it as plain text",
        ),
    ],
)
def test_schema_errors(text: str, expected: str) -> None:
    assert expected in messages(text)


def test_all_problems_of_a_card_are_reported_together() -> None:
    found = messages("---\nid: BAD\ntags: x\ntype: nope\nfoo: 1\n---\nno heading\n")
    assert len(found) == 5


def test_duplicate_ids_across_cards() -> None:
    one, _ = validate("---\nid: a\ntags: []\n---\n# Q\n\nA\n")
    two, _ = validate("---\ntags: []\nid: a\n---\n# Q2\n\nA\n")
    problems = check_unique_ids([one, two])
    assert [(p.message.split(" (")[0], p.location.line) for p in problems] == [
        ("id 'a' is also used by alpha/card.md", 3)
    ]


def test_output_block_right_after_python_block_is_accepted() -> None:
    card, problems = validate("---\nid: a\ntags: []\n---\n# Q\n\n```python\nprint(1)\n```\n\n```output\n1\n```\n")
    assert problems == [] and card is not None


def test_a_percent_line_inside_a_longer_fence_is_code_not_the_front_end(tmp_path: Path) -> None:
    """The front ends at '%' only outside fences, by the same fence rule the scanner uses."""
    text = "---\nid: t-fence\ntags: [x]\nsource: [t]\n---\n# Q?\n\n````text\n```\n%\n```\n````\n\nThe answer.\n"
    path = tmp_path / "t" / "fence.md"
    path.parent.mkdir()
    path.write_text(text)
    parsed, problems = parse_card_file(path, text)
    assert parsed is not None and problems == []
    card, problems = validate_file(parsed, "t")
    assert problems == [] and card is not None
    assert card.front == "Q?"
    assert card.back.startswith("````text\n```\n%\n") and card.back.endswith("The answer.")
