"""Pinned identities: if one of these changes, users lose review history or get duplicates."""

from __future__ import annotations

from generator.ids import MODEL_IDS, deck_id, note_guid


def test_note_guids_are_pinned() -> None:
    assert note_guid("cnn-conv-output-size") == NOTE_GUID_CONV
    assert note_guid("alpha-dense") == NOTE_GUID_DENSE


def test_guid_depends_on_the_id_only() -> None:
    assert note_guid("a-b") == note_guid("a-b")
    assert note_guid("a-b") != note_guid("a-c")


def test_deck_ids_are_pinned() -> None:
    assert deck_id("cnn") == DECK_ID_CNN
    assert deck_id("keras-basics") == DECK_ID_KERAS


def test_model_ids_are_pinned() -> None:
    assert MODEL_IDS == {"basic": 1246741619, "reversed": 1129797610, "cloze": 1969982484}


# Literal values recorded at the first release; never update them to make a test pass.
NOTE_GUID_CONV = "E&<heYhn,("
NOTE_GUID_DENSE = "N>Z/ap<)zU"
DECK_ID_CNN = 2121616761
DECK_ID_KERAS = 1862608935
