"""`decks stats`: cards per topic and type, tags, code, formulas, tables and answer lengths."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from generator.authoring.stats import content_stats
from generator.cli import main
from tests.conftest import WriteCard


def test_cli_stats(content: Path, sample_cards: None, runner: CliRunner) -> None:
    result = runner.invoke(main, ["stats", "--content", str(content)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "5 cards in 2 topics, making 7 Anki cards"
    assert lines[2].split() == ["topic", "basic", "reversed", "cloze", "total"]
    assert lines[3].split() == ["alpha", "3", "0", "0", "3"]
    assert lines[5].split() == ["total", "3", "1", "1", "5"]
    assert "code blocks: 1 (python 1)" in lines
    assert "formulas: 4 (3 inline, 1 display)" in lines
    assert "tables: 1" in lines
    figures = json.loads(runner.invoke(main, ["stats", "--content", str(content), "--json"]).stdout)
    assert figures["tags"] == {"math": 2, "code": 1, "comparison": 1, "concept": 1}
    assert figures["topics"][1] == {
        "key": "beta",
        "name": "Beta Topic",
        "basic": 0,
        "reversed": 1,
        "cloze": 1,
        "total": 2,
    }
    assert set(figures["answer_words"]) == {"min", "q1", "median", "q3", "max"}


def test_cards_with_errors_are_left_out_and_counted(content: Path, sample_cards: None, write_card: WriteCard) -> None:
    write_card("alpha", "broken", "id: alpha-broken\ntags: []", "# Q?\n\n```pyhton\nx\n```\n")
    stats = content_stats(content)
    assert stats is not None
    assert (stats.cards, stats.skipped_files) == (5, 1)


def test_tables_code_and_anki_cards_are_counted(content: Path, write_card: WriteCard) -> None:
    body = """
    # Q?

    | a | b |
    |:--|--:|
    | 1 | 2 |

    ```python
    x = 1
    ```

    ```output
    1
    ```

    | c | d |
    | --- | --- |
    | 3 | 4 |
    """
    write_card("alpha", "tables", "id: alpha-tables\ntags: [x]\nsource: [s#1]", body)
    write_card(
        "beta",
        "clozes",
        "id: beta-clozes\ntags: [x]\ntype: cloze\nsource: [s#1]",
        "# T\n\n{{c1::a}} {{c3::b}} {{c1::c}}\n",
    )
    stats = content_stats(content)
    assert stats is not None
    assert stats.tables == 2
    assert stats.code_blocks == {"output": 1, "python": 1}
    assert stats.anki_cards == 3  # one card, plus two deletion numbers
    assert stats.tags == {"x": 2}


def test_answer_length_quartiles(content: Path, write_card: WriteCard) -> None:
    for words in (10, 20, 30, 40, 50):
        body = "# Q?\n\n" + " ".join(["word"] * words) + "\n"
        write_card("alpha", f"w{words}", f"id: alpha-w{words}\ntags: []\nsource: [s#1]", body)
    stats = content_stats(content)
    assert stats is not None
    assert stats.answer_length() == {"min": 10, "q1": 20, "median": 30, "q3": 40, "max": 50}


def test_missing_content_folder_is_a_clean_error(tmp_path: Path, runner: CliRunner) -> None:
    result = runner.invoke(main, ["stats", "--content", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert "cannot read the content folder" in result.stderr
