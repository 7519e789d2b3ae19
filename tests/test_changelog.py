"""A scripted series of releases gives the expected versions and changelog entries."""

from __future__ import annotations

from pathlib import Path

from generator.build import build
from tests.anki_support import answer_cards, import_package, notes_by_guid, scheduling_state
from tests.conftest import T0, WriteCard

DAY = 86_400


def card(write_card: WriteCard, topic: str, name: str, question: str, answer: str) -> None:
    write_card(topic, name, f"id: card-{name}\ntags: [concept]\nsource: [s#1]", f"# {question}\n\n{answer}\n")


def test_versions_and_changelog_follow_the_content(content: Path, write_card: WriteCard, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    card(write_card, "alpha", "one", "First question?", "First answer.")
    card(write_card, "alpha", "two", "Second question?", "Second answer.")
    card(write_card, "beta", "three", "Third question?", "Third answer.")
    assert build(content, dist, T0).manifest.version == "1.0.0"

    card(write_card, "alpha", "one", "First question?", "First answer, reworded.")  # edit
    assert build(content, dist, T0 + DAY).manifest.version == "1.0.1"

    card(write_card, "beta", "four", "Fourth question?", "Fourth answer.")  # add
    (content / "alpha" / "two.md").rename(content / "beta" / "two.md")  # move
    assert build(content, dist, T0 + 2 * DAY).manifest.version == "1.1.0"

    (content / "beta" / "three.md").unlink()  # remove
    assert build(content, dist, T0 + 3 * DAY).manifest.version == "2.0.0"

    assert build(content, dist, T0 + 4 * DAY).manifest.version == "2.0.0"  # nothing changed

    changelog = (dist / "CHANGELOG.md").read_text()
    sections = changelog.split("\n## ")[1:]
    assert [s.split("\n")[0] for s in sections] == [
        "2.0.0 (2023-11-17)",
        "1.1.0 (2023-11-16)",
        "1.0.1 (2023-11-15)",
        "1.0.0 (2023-11-14)",
    ]
    assert "### Removed (1)" in sections[0]
    assert "- `card-three`: Third question?" in sections[0]
    assert "Anki does not delete cards on import" in sections[0]
    assert "- `card-four`: Fourth question? (Test Decks::Beta Topic)" in sections[1]
    assert (
        "- `card-two`: Second question?: from Test Decks::Alpha Topic to Test Decks::Beta Topic "
        "(already imported copies stay in the old deck)" in sections[1]
    )
    assert "### Changed (1)\n\n- `card-one`: First question?" in sections[2]
    assert "### Added (3)" in sections[3]


def test_three_releases_import_cleanly_with_history(
    content: Path, write_card: WriteCard, tmp_path: Path, collection_factory
) -> None:
    dist = tmp_path / "dist"
    collection = collection_factory()
    for index in range(6):
        card(write_card, "alpha", f"c{index}", f"Question {index}?", "Answer v1.")
    build(content, dist, T0)
    assert import_package(collection, dist / "all-topics.apkg").new == 6
    answer_cards(collection, "Test Decks", 3)

    card(write_card, "alpha", "c0", "Question 0?", "Answer v2.")
    card(write_card, "beta", "c6", "Question 6?", "Answer v2.")
    build(content, dist, T0 + DAY)
    log = import_package(collection, dist / "all-topics.apkg")
    assert (log.new, log.updated, log.conflicting) == (1, 1, 0)
    answer_cards(collection, "Test Decks", 3)
    reviewed = scheduling_state(collection)
    revlog = collection.db.scalar("select count() from revlog")

    card(write_card, "alpha", "c1", "Question 1?", "Answer v3.")
    card(write_card, "alpha", "c0", "Question 0?", "Answer v3.")
    build(content, dist, T0 + 2 * DAY)
    log = import_package(collection, dist / "all-topics.apkg")
    assert (log.new, log.updated, log.conflicting) == (0, 2, 0)

    notes = notes_by_guid(collection)
    assert len(notes) == 7
    answers = sorted(fields[1] for _id, fields, _mod in notes.values())
    assert answers.count("<p>Answer v3.</p>") == 2
    assert scheduling_state(collection) == reviewed
    assert collection.db.scalar("select count() from revlog") == revlog == 6
