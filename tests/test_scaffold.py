"""`decks new` writes a valid card skeleton and never overwrites."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from generator.build import Options, compile_release
from generator.cards.validate import PLACEHOLDER_QUESTION, PLACEHOLDER_TEXTS
from generator.cli import main
from generator.diagnostics import BuildFailed
from generator.release.manifest import EMPTY


@pytest.mark.parametrize("card_type", ["basic", "reversed", "cloze"])
def test_new_card_is_valid(content: Path, runner: CliRunner, card_type: str) -> None:
    result = runner.invoke(main, ["new", "--content", str(content), "--type", card_type, "alpha", "my-card"])
    assert result.exit_code == 0, result.output
    path = content / "alpha" / "my-card.md"
    assert result.stdout.strip() == f"created {path}: replace the template text, then 'decks check {path}'"
    with pytest.raises(BuildFailed, match="still the template text"):  # a scaffold can never ship
        compile_release(content, EMPTY, 0)
    text = path.read_text()
    for template in (PLACEHOLDER_QUESTION, *PLACEHOLDER_TEXTS):
        text = text.replace(template, "Dropout {{c1::zeroes}} units." if "{{c1::" in template else "Edited.")
    path.write_text(text.replace("source: []", "source: [alpha]"))
    (card,) = compile_release(content, EMPTY, 0, options=Options(strict=True)).cards
    assert (card.card.id, card.card.type) == ("alpha-my-card", card_type)


def test_new_refuses_to_overwrite_or_reuse_an_id(content: Path, runner: CliRunner) -> None:
    args = ["new", "--content", str(content), "alpha", "x"]
    assert runner.invoke(main, args).exit_code == 0
    again = runner.invoke(main, args)
    assert again.exit_code == 1
    assert "already exists" in again.stderr
    (content / "beta" / "moved.md").write_text((content / "alpha" / "x.md").read_text())
    (content / "alpha" / "x.md").unlink()
    reuse = runner.invoke(main, args)
    assert reuse.exit_code == 1 and "is already used by" in reuse.stderr


def test_new_rejects_unknown_topic_and_bad_slug(content: Path, runner: CliRunner) -> None:
    unknown = runner.invoke(main, ["new", "--content", str(content), "nope", "x"]).stderr
    assert "unknown topic 'nope': choose one of alpha, beta" in unknown
    assert "invalid id" in runner.invoke(main, ["new", "--content", str(content), "alpha", "a" * 300]).stderr
    assert "invalid id" in runner.invoke(main, ["new", "--content", str(content), "alpha", "Bad_Slug"]).stderr
