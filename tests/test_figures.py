"""The card figures: committed bytes equal a fresh render, files are small, inert and used by a card."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from generator.cards.images import svg_problem
from tests.conftest import require_module

ROOT = Path(__file__).resolve().parents[1]
CONTENT = ROOT / "content"
COMMITTED = sorted(CONTENT.glob("*/figures/*.svg"))
MAX_FIGURE_BYTES = 25_000
EVENT_ATTRIBUTE = re.compile(rb"\son[a-z]+\s*=", re.IGNORECASE)


def figure_name(path: Path) -> str:
    """'cnn/figures/receptive-field.svg': the figure's key in the registry."""
    return path.relative_to(CONTENT).as_posix()


def test_there_are_at_least_fifteen_figures() -> None:
    assert len(COMMITTED) >= 15, [figure_name(path) for path in COMMITTED]


@pytest.mark.parametrize("path", COMMITTED, ids=figure_name)
def test_figure_is_small_and_holds_drawing_elements_only(path: Path) -> None:
    data = path.read_bytes()
    assert len(data) <= MAX_FIGURE_BYTES, f"{len(data)} bytes; simplify the drawing"
    for forbidden in (b"<script", b"foreignObject", b"<a ", b"<image", b"<!DOCTYPE"):
        assert forbidden not in data, forbidden
    assert EVENT_ATTRIBUTE.search(data) is None
    assert svg_problem(data) is None
    # An opaque white page first, so the figure reads the same in light and night mode.
    assert re.search(rb'<g id="patch_1">\s*<path d="[^"]*"\s*style="fill: #ffffff"/>', data)


@pytest.mark.parametrize("path", COMMITTED, ids=figure_name)
def test_figure_is_shown_on_a_card_of_its_topic(path: Path) -> None:
    link = f"](figures/{path.name})"
    cards = [card.name for card in path.parent.parent.glob("*.md") if link in card.read_text(encoding="utf-8")]
    assert cards, f"no card in {path.parent.parent.name}/ shows {path.name}"


def test_building_decks_never_imports_matplotlib() -> None:
    code = "import sys, generator.cli, generator.build; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


@pytest.mark.slow
def test_committed_figures_equal_a_fresh_render(tmp_path: Path) -> None:
    require_module("matplotlib")
    from generator.authoring import figures

    result = CliRunner().invoke(figures.main, ["--content", str(tmp_path)])
    assert result.exit_code == 0, result.output
    fresh = {path.relative_to(tmp_path).as_posix(): path for path in tmp_path.glob("*/figures/*.svg")}
    assert sorted(fresh) == sorted(figures.FIGURES)
    # Sorted as text: paths sort by folder first, so training/ would come before training-at-scale/.
    committed = sorted(figure_name(path) for path in COMMITTED)
    assert sorted(fresh) == committed, "every committed figure comes from the registry"
    stale = [name for name, path in fresh.items() if path.read_bytes() != (CONTENT / name).read_bytes()]
    assert not stale, f"stale figures (run decks figures): {stale}"


@pytest.mark.slow
def test_check_names_a_stale_figure_and_writes_nothing(tmp_path: Path) -> None:
    require_module("matplotlib")
    from generator.authoring import figures

    name = "cnn/figures/receptive-field.svg"
    target = tmp_path / name
    target.parent.mkdir(parents=True)
    target.write_bytes((CONTENT / name).read_bytes().replace(b"conv 3", b"conv 4"))
    edited = target.read_bytes()

    result = CliRunner().invoke(figures.main, ["--content", str(tmp_path), "--check", name])
    assert result.exit_code == 1
    assert f"{target}: differs from a fresh render" in result.output
    assert target.read_bytes() == edited

    result = CliRunner().invoke(figures.main, ["--content", str(tmp_path), name])
    assert result.exit_code == 0, result.output
    assert CliRunner().invoke(figures.main, ["--content", str(tmp_path), "--check", name]).exit_code == 0
