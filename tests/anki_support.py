"""Helpers that drive the real Anki importer and scheduler (the `anki` package)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.conftest import require_module

require_module("anki")  # without it, the test module importing these helpers is skipped (failed under CI)

from anki.collection import Collection, ImportAnkiPackageOptions, ImportAnkiPackageRequest  # noqa: E402
from anki.scheduler.v3 import CardAnswer  # noqa: E402

__all__ = ["CardAnswer", "ImportLog", "answer_cards", "import_package", "notes_by_guid", "rendered", "scheduling_state"]


@dataclass(frozen=True)
class ImportLog:
    new: int
    updated: int
    duplicate: int
    conflicting: int


def import_package(collection: Collection, package: Path) -> ImportLog:
    """Import with Anki's default options (update notes and note types if newer)."""
    response = collection.import_anki_package(
        ImportAnkiPackageRequest(package_path=str(package.resolve()), options=ImportAnkiPackageOptions())
    )
    log = response.log
    return ImportLog(len(log.new), len(log.updated), len(log.duplicate), len(log.conflicting))


def answer_cards(collection: Collection, deck: str, count: int, rating: int = CardAnswer.GOOD) -> list[int]:
    """Answer the next `count` cards of `deck` through the v3 scheduler; return their ids."""
    deck_id = collection.decks.id_for_name(deck)
    assert deck_id, f"no deck {deck!r}"
    collection.decks.select(deck_id)
    answered = []
    for _ in range(count):
        queued = collection.sched.get_queued_cards(fetch_limit=1)
        assert queued.cards, "no card left to answer"
        top = queued.cards[0]
        card = collection.get_card(top.card.id)
        card.start_timer()
        collection.sched.answer_card(collection.sched.build_answer(card=card, states=top.states, rating=rating))
        answered.append(card.id)
    return answered


def scheduling_state(collection: Collection) -> dict[int, tuple[object, ...]]:
    """Per card id: note id, deck, type, queue, due, interval, ease, reps, lapses."""
    rows = collection.db.all("select id, nid, did, type, queue, due, ivl, factor, reps, lapses from cards")
    return {row[0]: tuple(row[1:]) for row in rows}


def notes_by_guid(collection: Collection) -> dict[str, tuple[int, list[str], int]]:
    """Per note GUID: note id, fields, mod."""
    rows = collection.db.all("select guid, id, flds, mod from notes")
    return {guid: (note_id, fields.split("\x1f"), mod) for guid, note_id, fields, mod in rows}


def rendered(collection: Collection) -> list[tuple[str, str, str]]:
    """(deck name, question HTML, answer HTML) of every card, in card id order."""
    result = []
    for card_id in sorted(collection.find_cards("")):
        card = collection.get_card(card_id)
        output = card.render_output(reload=True)
        result.append((collection.decks.name(card.did), output.question_text, output.answer_text))
    return result
