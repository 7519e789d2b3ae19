"""One card compiled: the budget, and the last gate every field passes, cached or fresh."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from generator.cards.compile import compile_card, field_gate
from generator.cards.load import SourceFile

PATH = Path("/cards/alpha/card.md")
CLOZE_CARD = (
    "---\nid: alpha-card\ntags: []\nsource: [alpha]\ntype: cloze\n---\n"
    "# Adam keeps\n\n{{c1::two}} moments per {{c2::weight}}.\n"
)


def test_a_cloze_note_makes_one_card_per_deletion_number() -> None:
    rendered, diagnostics = compile_card(SourceFile(PATH, "alpha", CLOZE_CARD))
    assert rendered is not None, diagnostics
    assert rendered.card_count == 2
    assert field_gate(rendered) == []


def test_the_gate_refuses_a_field_anki_would_read_other_deletions_from() -> None:
    rendered, _ = compile_card(SourceFile(PATH, "alpha", CLOZE_CARD))
    assert rendered is not None
    # As a buggy renderer (or a planted cache entry) might leave it: c2's marker gone from the field.
    broken = dataclasses.replace(
        rendered, fields=(rendered.fields[0].replace("{{c2::weight}}", "weight"), *rendered.fields[1:])
    )
    [problem] = field_gate(broken)
    assert problem.format() == (
        "/cards/alpha/card.md:7:1: error: the rendered field makes the cloze cards [1], the card's text [1, 2]\n"
        "  hint: keep each deletion in plain text: outside code, links and HTML"
    )
