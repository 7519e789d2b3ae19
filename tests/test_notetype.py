"""The note types' frozen schema, and code colours readable in light and night mode."""

from __future__ import annotations

import re

import pytest
from pygments.styles import get_style_by_name
from pygments.token import Token

from generator.notetype import (
    DARK_CODE_STYLE,
    LIGHT_CODE_BACKGROUND,
    LIGHT_CODE_BORDER,
    LIGHT_CODE_STYLE,
    NIGHT_SELECTORS,
    note_types,
    stylesheet,
)
from generator.preview.assets import ANKI_LIGHT_CANVAS
from tests.contrast import contrast


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
