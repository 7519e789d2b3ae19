"""The note types' frozen schema, and code colours readable in light and night mode."""

from __future__ import annotations

import re

import pytest
from pygments.styles import get_style_by_name
from pygments.token import Token

from generator.apkg.notetype import (
    DARK_CODE_STYLE,
    LIGHT_CODE_BACKGROUND,
    LIGHT_CODE_BORDER,
    LIGHT_CODE_STYLE,
    NIGHT_FIGURE_FILTER,
    NIGHT_SELECTORS,
    note_types,
    stylesheet,
)
from generator.preview.assets import ANKI_LIGHT_CANVAS
from tests.contrast import contrast, luminance


def test_schema_is_frozen() -> None:
    """Field and template names and counts may never change (Anki would fork the note type)."""
    schema = {
        kind: (nt.model_id, nt.fields, tuple(t.name for t in nt.templates), nt.is_cloze)
        for kind, nt in note_types().items()
    }
    assert schema == {
        "basic": (1246741619, ("Front", "Back", "Id"), ("Card 1",), False),
        "reversed": (1129797610, ("Front", "Back", "Id"), ("Card 1", "Card 2"), False),
        "cloze": (1969982484, ("Text", "Extra", "Id"), ("Cloze",), True),
    }


def test_templates_use_only_known_fields() -> None:
    for nt in note_types().values():
        for template in nt.templates:
            used = set(re.findall(r"\{\{[#/^]?(?:cloze:)?(\w+)\}\}", template.question + template.answer))
            assert used <= {*nt.fields, "FrontSide"}


def test_definition_hash_follows_css() -> None:
    basic = note_types()["basic"]
    from dataclasses import replace

    assert replace(basic, css=basic.css + "x{}").definition_hash() != basic.definition_hash()


def test_stylesheet_has_a_night_variant_for_every_selector() -> None:
    css = stylesheet()
    for selector in NIGHT_SELECTORS:
        assert f"{selector} .highlight .k" in css
        assert f"{selector} .highlight span" in css


@pytest.mark.parametrize(
    ("style_name", "default_text", "box"),
    [(LIGHT_CODE_STYLE, "#1f2328", LIGHT_CODE_BACKGROUND), (DARK_CODE_STYLE, None, None)],
)
def test_every_token_colour_is_readable(style_name: str, default_text: str | None, box: str | None) -> None:
    """Every token colour against the code box: WCAG AA (4.5:1) by day, AA-large (3:1) at night."""
    style = get_style_by_name(style_name)
    background = box or style.background_color
    minimum = 4.5 if box else 3.0
    text = default_text or style.style_for_token(Token.Text)["color"] or "e6edf3"
    assert contrast(text, background) >= 4.5
    for token in style.styles:
        color = style.style_for_token(token)["color"]
        # Error tokens are meant to stand out; whitespace is invisible anyway.
        if color and "Error" not in str(token) and "Whitespace" not in str(token):
            assert contrast(color, background) >= minimum, (style_name, token, color)


@pytest.mark.parametrize("canvas", [ANKI_LIGHT_CANVAS, "#ffffff"])  # Anki desktop, and AnkiMobile/AnkiDroid
def test_light_code_box_stands_out_from_the_page(canvas: str) -> None:
    assert contrast(LIGHT_CODE_BORDER, canvas) >= 3.0  # WCAG's minimum for the edge of a component
    css = stylesheet()
    assert f".highlight {{ background: {LIGHT_CODE_BACKGROUND}; border: 1px solid {LIGHT_CODE_BORDER}; }}" in css


def night_figure_colour(colour: str) -> tuple[float, float, float]:
    """`colour` after NIGHT_FIGURE_FILTER, as the CSS filter functions compute it (in sRGB)."""
    amount = float(re.search(r"invert\(([\d.]+)\)", NIGHT_FIGURE_FILTER).group(1))  # type: ignore[union-attr]
    assert "hue-rotate(180deg)" in NIGHT_FIGURE_FILTER
    r, g, b = (amount * (1 - c / 255) + (1 - amount) * c / 255 for c in (int(colour[i : i + 2], 16) for i in (1, 3, 5)))
    rotate = ((-0.574, 1.430, 0.144), (0.426, 0.430, 0.144), (0.426, 1.430, -0.856))  # hue-rotate(180deg)
    return tuple(min(1.0, max(0.0, row[0] * r + row[1] * g + row[2] * b)) * 255 for row in rotate)  # type: ignore[return-value]


def test_figures_at_night_are_a_dark_page_with_readable_ink() -> None:
    """The inverted figure is no white panel, and its text and lines still stand out at night."""
    from generator.authoring import figures

    page = night_figure_colour("#ffffff")
    assert luminance(page) < 0.03  # a dark grey page, not a glaring one
    assert contrast(night_figure_colour(figures.INK), page) >= 7.0
    assert contrast(night_figure_colour(figures.MUTED), page) >= 4.5
    for colour in (figures.BLUE, figures.VERMILLION, figures.GREEN, figures.PURPLE, figures.ORANGE):
        assert contrast(night_figure_colour(colour), page) >= 3.0, colour  # WCAG's minimum for graphics
    css = stylesheet()
    for selector in NIGHT_SELECTORS:
        assert f'{selector} img[src$=".svg"]' in css
