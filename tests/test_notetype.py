"""The note types' frozen schema, and code colours readable in light and night mode."""

from __future__ import annotations

import re

import pytest
from pygments.styles import get_style_by_name
from pygments.token import Token

from generator.notetype import DARK_CODE_STYLE, LIGHT_CODE_STYLE, NIGHT_SELECTORS, note_types, stylesheet


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


def _luminance(hex_color: str) -> float:
    hex_color = hex_color.lstrip("#")
    if len(hex_color) == 3:
        hex_color = "".join(c * 2 for c in hex_color)
    channels = [int(hex_color[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize(("style_name", "default_text"), [(LIGHT_CODE_STYLE, "#1f2328"), (DARK_CODE_STYLE, None)])
def test_every_token_colour_is_readable(style_name: str, default_text: str | None) -> None:
    """WCAG AA-large (3:1) or better for every token colour against the code background."""
    style = get_style_by_name(style_name)
    background = style.background_color
    text = default_text or style.style_for_token(Token.Text)["color"] or "e6edf3"
    assert _contrast(text, background) >= 4.5
    for token in style.styles:
        color = style.style_for_token(token)["color"]
        # Error tokens are meant to stand out; whitespace is invisible anyway.
        if color and "Error" not in str(token) and "Whitespace" not in str(token):
            assert _contrast(color, background) >= 3.0, (style_name, token, color)
