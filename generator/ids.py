"""Identities that users' collections depend on. Never change these values.

Anki recognises a note by its GUID, a note type by its id (plus its field and
template names), and a deck by its full name. The GUID comes from the card's
authored `id`, never from its content, so edits update the existing note.
"""

from __future__ import annotations

import hashlib

import genanki

# Random, fixed model ids: genanki's built-in models share their ids with every
# other genanki deck, so ours are our own. Changing one orphans every note.
MODEL_IDS = {"basic": 1246741619, "reversed": 1129797610, "cloze": 1969982484}

GUID_NAMESPACE = "dl-interview-decks"

# Note ids are assigned once per card and kept in the manifest; cards of a note
# take the ids after it, so notes are spaced this far apart.
NOTE_ID_SPACING = 100


def note_guid(card_id: str) -> str:
    """The Anki GUID of the note for the card with this authored id."""
    return str(genanki.guid_for(GUID_NAMESPACE, card_id))


def deck_id(topic_key: str) -> int:
    """A stable deck id for a topic folder (Anki matches decks by name; this keeps packages stable)."""
    digest = hashlib.sha256(f"{GUID_NAMESPACE}:deck:{topic_key}".encode()).digest()
    return 1 << 30 | int.from_bytes(digest[:4], "big") >> 2


def umbrella_deck_id(name: str) -> int:
    """A stable deck id for the umbrella deck that holds the topics."""
    return deck_id(f"umbrella:{name}")
