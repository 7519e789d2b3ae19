"""Pinned identities: if one of these changes, users lose review history or get duplicates."""

from __future__ import annotations

import os
import subprocess
import sys

from generator.apkg.ids import MODEL_IDS, deck_id, note_guid


def test_note_guids_are_pinned() -> None:
    assert note_guid("cnn-conv-output-size") == NOTE_GUID_CONV
    assert note_guid("alpha-dense") == NOTE_GUID_DENSE


def test_guid_is_a_fixed_function_of_the_id() -> None:
    assert note_guid("a-b") == NOTE_GUID_A_B
    assert note_guid("a-c") == NOTE_GUID_A_C
    # A fresh interpreter with another hash seed agrees: nothing depends on hash() or process state.
    script = "from generator.apkg.ids import note_guid; print(note_guid('a-b')); print(note_guid('a-c'))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert completed.stdout.splitlines() == [NOTE_GUID_A_B, NOTE_GUID_A_C]


def test_guids_of_different_ids_differ() -> None:
    ids = [f"{topic}-card-{n}" for topic in ("cnn", "rnn", "keras-basics") for n in range(1000)]
    assert len({note_guid(card_id) for card_id in ids}) == len(ids)


def test_deck_ids_are_pinned() -> None:
    assert deck_id("cnn") == DECK_ID_CNN
    assert deck_id("keras-basics") == DECK_ID_KERAS


def test_model_ids_are_pinned() -> None:
    assert MODEL_IDS == {"basic": 1246741619, "reversed": 1129797610, "cloze": 1969982484}


# Literal values recorded at the first release; never update them to make a test pass.
NOTE_GUID_CONV = "E&<heYhn,("
NOTE_GUID_DENSE = "N>Z/ap<)zU"
NOTE_GUID_A_B = "M2d0s</`uG"
NOTE_GUID_A_C = "yuZXTpMU[m"
DECK_ID_CNN = 2121616761
DECK_ID_KERAS = 1862608935
