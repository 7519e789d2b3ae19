"""Identities that users' collections depend on. Never change these values.

Anki recognises a note by its GUID, a note type by its id (plus its field and
template names), and a deck by its full name. The GUID comes from the card's
authored `id`, never from its content, so edits update the existing note.
"""

from __future__ import annotations

import functools
import hashlib

# Random, fixed model ids: genanki's built-in models share their ids with every
# other genanki deck, so ours are our own. Changing one orphans every note.
MODEL_IDS = {"basic": 1246741619, "reversed": 1129797610, "cloze": 1969982484}

GUID_NAMESPACE = "dl-interview-decks"

# Note ids are assigned once per card and kept in the manifest; cards of a note
# take the ids after it, so notes are spaced this far apart.
NOTE_ID_SPACING = 100


@functools.cache  # asked by the plan and again by packaging, for every note: a pure function of the id
def note_guid(card_id: str) -> str:
    """The Anki GUID of the note for the card with this authored id (or imported lineage id)."""
    original = imported_guid(card_id)
    if original is not None:
        return original
    import genanki  # loaded on first use: an up-to-date build computes no GUID

    return str(genanki.guid_for(GUID_NAMESPACE, card_id))


def deck_id(topic_key: str) -> int:
    """A stable deck id for a topic folder (Anki matches decks by name; this keeps packages stable)."""
    digest = hashlib.sha256(f"{GUID_NAMESPACE}:deck:{topic_key}".encode()).digest()
    return 1 << 30 | int.from_bytes(digest[:4], "big") >> 2


def umbrella_deck_id(name: str) -> int:
    """A stable deck id for the umbrella deck that holds the topics."""
    return deck_id(f"umbrella:{name}")


def field_id(kind: str, name: str) -> int:
    """A stable id for a note type's field: Anki 23.10+ matches fields by id when it merges note types."""
    return deck_id(f"field:{kind}:{name}")


def template_id(kind: str, name: str) -> int:
    """A stable id for a note type's card template (matched by id like fields)."""
    return deck_id(f"template:{kind}:{name}")


# A card imported from another deck keeps that deck's GUID, so its users keep their history. The GUID
# travels through the manifest and the ledger as a lineage id of this form (hex of the GUID's UTF-8).
IMPORTED_GUID_PREFIX = "imported-guid-"


def imported_guid_id(guid: str) -> str:
    """The lineage id that stands for an imported note's own GUID."""
    return IMPORTED_GUID_PREFIX + guid.encode().hex()


def imported_guid(guid_id: str) -> str | None:
    """The original GUID an imported lineage id stands for, or None for an ordinary id."""
    if not guid_id.startswith(IMPORTED_GUID_PREFIX):
        return None
    try:
        return bytes.fromhex(guid_id.removeprefix(IMPORTED_GUID_PREFIX)).decode()
    except ValueError:
        return None
