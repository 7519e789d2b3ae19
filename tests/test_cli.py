"""End-to-end CLI tests: exit codes, exact diagnostics, and dist/ left untouched on errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from generator.cli import main
from tests.conftest import T0, WriteCard

GOOD = "id: alpha-good\ntags: [concept]\nsource: [s#1]"


def run(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(main, list(args), env={"SOURCE_DATE_EPOCH": str(T0)})
    return result.exit_code, result.stdout, result.stderr


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}


@pytest.fixture
def built(content: Path, write_card: WriteCard, runner: CliRunner, tmp_path: Path) -> Path:
    """A content tree with one good card, already built into dist/."""
    write_card("alpha", "good", GOOD, "# A question?\n\nAn answer.\n")
    dist = tmp_path / "dist"
    code, out, err = run(runner, "build", "--content", str(content), "--dist", str(dist))
    assert code == 0, err
    assert "built 2 decks (1 notes, 1 cards)" in out
    return dist


CASES = [
    pytest.param(
        "---\nid: alpha-x\ntags: [a\n---\n# Q?\n\nA.\n",
        "bad.md:3:9: error: invalid YAML",
        id="broken-front-matter",
    ),
    pytest.param(
        "---\ntags: [a]\n---\n# Q?\n\nA.\n", "bad.md:1:1: error: missing 'id' in front matter", id="missing-id"
    ),
    pytest.param(
        "---\nid: alpha-good\ntags: [a]\n---\n# Q2?\n\nA.\n",
        "good.md:2:1: error: id 'alpha-good' is also used by",
        id="duplicate-id",
    ),
    pytest.param(
        "---\nid: alpha-x\ntags: [a]\n---\nJust text.\n",
        "bad.md:5:1: error: missing front: the body must start with a '# ' heading",
        id="missing-front",
    ),
    pytest.param(
        "---\nid: alpha-x\ntags: [a]\n---\n# Q?\n",
        "bad.md:5:1: error: missing back: there is no answer after the question",
        id="missing-back",
    ),
    pytest.param(
        "---\nid: alpha-x\ntags: [a]\ntype: flashcard\n---\n# Q?\n\nA.\n",
        "bad.md:4:7: error: unknown card type 'flashcard'",
        id="unknown-type",
    ),
    pytest.param(
        "---\nid: alpha-x\ntag: [a]\n---\n# Q?\n\nA.\n",
        "bad.md:3:1: error: unknown front-matter key 'tag'\n  hint: did you mean 'tags'?",
        id="unknown-key",
    ),
    pytest.param(
        "---\nid: alpha-x\ntags: [a]\n---\n# Q?\n\n```pythn\nx = 1\n```\n",
        "bad.md:7:1: error: unknown code language 'pythn'",
        id="unknown-language",
    ),
    pytest.param(
        "---\nid: alpha-x\ntags: [a]\n---\n# Q?\n\nThe cost is $x + y.\n",
        "bad.md:7:13: error: '$' has no matching closing '$'\n  hint: write \\$ for a literal dollar sign",
        id="unbalanced-math",
    ),
    pytest.param(
        "---\nid: alpha-x\nid: alpha-y\ntags: [a]\n---\n# Q?\n\nA.\n",
        "bad.md:3:1: error: duplicate key 'id' (first given on line 2)",
        id="duplicate-key",
    ),
    pytest.param(
        "---\nid: alpha-x\ntags: [a]\ntype: cloze\n---\n# Title\n\nNo deletion here.\n",
        "bad.md:6:1: error: cloze card has no deletion",
        id="cloze-without-deletion",
    ),
    pytest.param(
        "---\nid: alpha-x\ntags: [a]\n---\n# Q?\n\n![d](missing.png)\n",
        "bad.md:7:6: error: image 'missing.png' not found",
        id="missing-image",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_error_is_located_and_dist_untouched(
    built: Path, content: Path, runner: CliRunner, text: str, expected: str
) -> None:
    before = snapshot(built)
    (content / "alpha" / "bad.md").write_text(text, encoding="utf-8")
    code, _out, err = run(runner, "build", "--content", str(content), "--dist", str(built))
    assert code == 1
    assert f"{content / 'alpha' / expected}" in err
    assert "Traceback" not in err
    assert snapshot(built) == before


def test_all_errors_of_a_run_are_reported(built: Path, content: Path, runner: CliRunner) -> None:
    (content / "alpha" / "one.md").write_text("---\ntags: [a]\n---\n# Q?\n\nA.\n")
    (content / "beta" / "two.md").write_text("---\nid: beta-two\ntags: [a]\n---\n# Q?\n\n```nolang\n```\n")
    code, _out, err = run(runner, "build", "--content", str(content), "--dist", str(built))
    assert code == 1
    assert f"{content}/alpha/one.md:1:1: error: missing 'id'" in err
    assert f"{content}/beta/two.md:7:1: error: unknown code language 'nolang'" in err
    assert err.rstrip().endswith("2 errors in 2 files")


def test_deck_rename_is_refused_unless_allowed(built: Path, content: Path, runner: CliRunner) -> None:
    (content / "alpha" / "topic.yaml").write_text("name: Renamed\ndescription: d\norder: 0\n")
    code, _out, err = run(runner, "build", "--content", str(content), "--dist", str(built))
    assert code == 1
    assert "deck would be renamed from 'Test Decks::Alpha Topic' to 'Test Decks::Renamed'" in err
    code, _out, err = run(runner, "build", "--content", str(content), "--dist", str(built), "--allow-rename")
    assert code == 0, err


def test_strict_turns_warnings_into_errors(built: Path, content: Path, runner: CliRunner) -> None:
    (content / "beta" / "nosource.md").write_text("---\nid: beta-x\ntags: []\n---\n# Q?\n\nA.\n")
    code, _out, err = run(runner, "build", "--content", str(content), "--dist", str(built), "--strict")
    assert code == 1
    assert f"{content}/beta/nosource.md:2:1: warning: card has no 'source'" in err


def test_check_verb_validates_without_writing(content: Path, write_card: WriteCard, runner: CliRunner) -> None:
    write_card("alpha", "good", GOOD, "# A question?\n\nAn answer.\n")
    code, out, _err = run(runner, "check", "--content", str(content))
    assert (code, out.strip()) == (0, "1 cards OK")
    assert not (content.parent / "dist").exists()


def test_module_entry_point_runs() -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "generator", "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.startswith("decks (generator 0.2.0), content release ")
