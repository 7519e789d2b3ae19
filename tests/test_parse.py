"""Front matter is split off and read strictly, with file positions."""

from __future__ import annotations

from pathlib import Path

from generator.cards.parse import parse_card_file, read_yaml_mapping

PATH = Path("card.md")


def test_values_stay_the_text_the_author_wrote() -> None:
    meta, problems = read_yaml_mapping(PATH, "id: 010\ntags: [no, yes, 2024-01-01, 1.5]\ntype: null\n")
    assert problems == []
    assert meta["id"].value == "010"
    assert meta["tags"].value == ("no", "yes", "2024-01-01", "1.5")
    assert meta["type"].value == "null"


def test_duplicate_keys_are_errors_with_both_lines() -> None:
    _meta, problems = read_yaml_mapping(PATH, "id: a\ntags: []\nid: b\n", first_line=2)
    assert [p.format() for p in problems] == [
        "card.md:4:1: error: duplicate key 'id' (first given on line 2)\n  hint: keep one of the two"
    ]


def test_nested_mappings_are_rejected() -> None:
    _meta, problems = read_yaml_mapping(PATH, "tags:\n  a: b\n")
    assert problems[0].message == "'tags' must be a string or a list of strings"
    assert problems[0].location.line == 2


def test_body_and_its_first_line() -> None:
    parsed, problems = parse_card_file(PATH, "---\nid: a\ntags: []\n---\n# Q?\n\nA.\n")
    assert problems == []
    assert parsed is not None
    assert parsed.body == "# Q?\n\nA.\n"
    assert parsed.body_line == 5
    assert parsed.meta["tags"].location.line == 3


def test_missing_and_unclosed_front_matter() -> None:
    assert parse_card_file(PATH, "# Q?\n")[1][0].message == "missing front matter"
    assert parse_card_file(PATH, "---\nid: a\n# Q?\n")[1][0].message == "front matter is never closed"


def test_yaml_syntax_error_points_into_the_file() -> None:
    _parsed, problems = parse_card_file(PATH, "---\nid: a\ntags: [x\n---\n# Q\n")
    assert problems[0].location.line == 3
    assert problems[0].message.startswith("invalid YAML")
