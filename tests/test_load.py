"""Reading the content tree: topics, umbrella name, encodings and newlines."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from generator.cards.load import load_content


def test_topics_are_ordered_and_files_sorted(content: Path) -> None:
    (content / "beta" / "b.md").write_text("x")
    (content / "beta" / "a.md").write_bytes(b"\xef\xbb\xbfline\r\nnext\rlast")
    loaded, problems = load_content(content)
    assert problems == []
    assert [t.key for t in loaded.deckset.topics] == ["alpha", "beta"]
    assert loaded.deckset.deck_name(loaded.deckset.topics[0]) == "Test Decks::Alpha Topic"
    assert [f.path.name for f in loaded.files] == ["a.md", "b.md"]
    assert loaded.files[0].text == "line\nnext\nlast"


def test_bad_topic_files_are_reported(content: Path) -> None:
    (content / "alpha" / "topic.yaml").write_text("name: A\ndescription: d\norder: first\ncolour: red\n")
    (content / "Bad Folder").mkdir()
    (content / "beta" / "x.md").write_bytes(b"\xff\xfe")
    _loaded, problems = load_content(content)
    assert sorted(p.message for p in problems) == [
        "not valid UTF-8 (invalid start byte)",
        "order must be a whole number of at most 6 digits, not 'first'",
        "topic folder name 'Bad Folder' is not allowed",
        "unknown key 'colour'",
    ]


def test_missing_deckset(tmp_path: Path) -> None:
    loaded, problems = load_content(tmp_path)
    assert loaded is None
    assert problems[0].message == "missing deckset.yaml"


def test_without_read_cards_the_files_are_listed_and_read_later(content: Path) -> None:
    (content / "beta" / "a.md").write_bytes(b"\xef\xbb\xbfline\r\nnext")
    (content / "beta" / "b.md").write_bytes(b"\xff\xfe")
    loaded, problems = load_content(content, read_cards=False)
    assert problems == []  # nothing read yet: the bad file is reported when it is read
    assert [(f.path.name, f.text, f.known_key) for f in loaded.files] == [("a.md", None, None), ("b.md", None, None)]
    good, bad = loaded.files
    assert good.read()[0].text == "line\nnext"
    unread, reading = bad.read()
    assert unread is None
    assert [p.format() for p in reading] == [
        f"{bad.path}:1:1: error: not valid UTF-8 (invalid start byte)\n  hint: save the file as UTF-8"
    ]


def test_a_broken_deckset_still_reports_what_is_wrong_in_the_card_files(content: Path) -> None:
    (content / "deckset.yaml").write_text("nam: Test Decks\n")
    (content / "alpha" / "bad.md").write_bytes(b"---\nid: alpha-bad\n\xff\n")
    loaded, problems = load_content(content, read_cards=False)
    assert loaded is None
    assert f"{content / 'alpha' / 'bad.md'}:3:1: error: not valid UTF-8 (invalid start byte)" in [
        p.format().splitlines()[0] for p in problems
    ]


@pytest.mark.skipif(not hasattr(os, "O_NOFOLLOW"), reason="no O_NOFOLLOW on this system")
def test_a_card_file_swapped_for_a_symlink_after_listing_is_not_followed_outside(content: Path, tmp_path: Path) -> None:
    card = content / "alpha" / "card.md"
    card.write_text("---\nid: alpha-card\n---\n# Q?\n\nA.\n")
    secret = tmp_path / "secret.md"
    secret.write_text("outside the content folder\n")
    loaded, _ = load_content(content, read_cards=False)
    [listed] = loaded.files
    card.unlink()
    card.symlink_to(secret)  # between listing and reading, as a build reads seconds later
    read, problems = listed.read()
    assert read is None
    assert [p.message for p in problems] == [f"symlink to {secret.resolve()}, outside the content folder"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_card_file_swapped_for_a_fifo_after_listing_is_refused_without_waiting(content: Path) -> None:
    card = content / "alpha" / "card.md"
    card.write_text("---\nid: alpha-card\n---\n# Q?\n\nA.\n")
    loaded, _ = load_content(content, read_cards=False)
    [listed] = loaded.files
    card.unlink()
    os.mkfifo(card)  # opening it for reading would wait for a writer
    read, problems = listed.read()
    assert read is None
    assert [p.message for p in problems] == ["not a regular file or folder"]
