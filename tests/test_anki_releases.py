"""Releases imported into a real Anki collection: review history survives edits, renames and removals."""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.build import Options, build
from tests.conftest import T0, WriteCard

pytestmark = pytest.mark.slow
DAY = 86_400


def card(write_card: WriteCard, topic: str, name: str, answer: str, extra: str = "") -> None:
    write_card(
        topic, name, f"id: card-{name}\ntags: [concept]\nsource: [s#1]{extra}", f"# Question {name}?\n\n{answer}\n"
    )


def test_three_releases_with_edits_rename_and_removal(
    content: Path, write_card: WriteCard, tmp_path: Path, collection_factory
) -> None:
    from tests.anki_support import answer_cards, import_package, notes_by_guid, scheduling_state

    dist = tmp_path / "dist"
    collection = collection_factory()
    for index in range(6):
        card(write_card, "alpha", f"c{index}", "Answer v1.")
    build(content, dist, T0, release="auto")
    assert import_package(collection, dist / "all-topics.apkg").new == 6
    answer_cards(collection, "Test Decks", 4)
    note_ids = {fields[2]: note_id for note_id, fields, _mod in notes_by_guid(collection).values()}

    # Release 2: an edit, a rename declared with previous_ids, a removal and an addition,
    # after several draft builds.
    card(write_card, "alpha", "c0", "Answer v2.")
    build(content, dist, T0 + DAY)
    (content / "alpha" / "c1.md").unlink()
    card(write_card, "alpha", "first", "Answer v1.", "\nprevious_ids: [card-c1]")
    (content / "alpha" / "c5.md").unlink()
    card(write_card, "beta", "c6", "Answer v2.")
    build(content, dist, T0 + DAY + 60)
    assert (
        build(content, dist, T0 + DAY + 120, options=Options(allow_removal=True), release="auto").manifest.version
        == "2.0.0"
    )
    log = import_package(collection, dist / "all-topics.apkg")
    assert (log.new, log.updated, log.conflicting) == (1, 2, 0)
    answer_cards(collection, "Test Decks", 3)
    reviewed = scheduling_state(collection)
    revlog = collection.db.scalar("select count() from revlog")

    # Release 3: one more edit.
    card(write_card, "alpha", "c0", "Answer v3.")
    assert build(content, dist, T0 + 2 * DAY, release="auto").manifest.version == "2.0.1"
    log = import_package(collection, dist / "all-topics.apkg")
    assert (log.new, log.updated, log.conflicting) == (0, 1, 0)

    notes = notes_by_guid(collection)
    assert len(notes) == 7  # six, plus c6; the removed c5 stays with the user; no duplicates
    by_id = {fields[2]: (note_id, fields) for note_id, fields, _mod in notes.values()}
    assert by_id["card-first"][0] == note_ids["card-c1"]  # the renamed card is the same note
    assert "card-c1" not in by_id
    assert by_id["card-c0"][1][1] == "<p>Answer v3.</p>"
    assert scheduling_state(collection) == reviewed
    assert collection.db.scalar("select count() from revlog") == revlog == 7
