"""Reading the content tree: topics, umbrella name, encodings and newlines."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from generator.cards import load as load_module
from generator.cards.load import load_content
from generator.diagnostics import Diagnostic


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
    outcome: list[tuple[object, list[Diagnostic]]] = []
    reader = threading.Thread(target=lambda: outcome.append(listed.read()), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert outcome, "reading waited on the FIFO"
    [(read, problems)] = outcome
    assert read is None
    assert [p.message for p in problems] == ["not a regular file or folder"]


@pytest.mark.parametrize("no_follow", [True, False], ids=["O_NOFOLLOW", "without O_NOFOLLOW"])
def test_a_card_file_changed_after_listing_is_reported_as_it_now_is(
    content: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_follow: bool
) -> None:
    if not no_follow:
        monkeypatch.setattr(load_module, "NO_FOLLOW", 0)  # as on Windows
    elif not load_module.NO_FOLLOW:
        pytest.skip("no O_NOFOLLOW on this system")
    names = ("gone", "folder", "link-to-folder", "link-outside", "link-inside")
    for name in names:
        (content / "alpha" / f"{name}.md").write_text(f"---\nid: alpha-{name}\n---\n# Q?\n\nA.\n")
    (content / "alpha" / "sub").mkdir()
    (content / "beta" / "real.md").write_text("---\nid: beta-real\n---\n# Q?\n\nInside.\n")
    (tmp_path / "secret.md").write_text("outside\n")
    loaded, _ = load_content(content, read_cards=False)
    listed = {source.path.stem: source for source in loaded.files}
    folder = content / "alpha"
    (folder / "gone.md").unlink()  # an editor that saves by delete-then-write, caught in between
    (folder / "folder.md").unlink()
    (folder / "folder.md").mkdir()
    for name, target in (("link-to-folder", folder / "sub"), ("link-outside", tmp_path / "secret.md")):
        (folder / f"{name}.md").unlink()
        (folder / f"{name}.md").symlink_to(target)
    (folder / "link-inside.md").unlink()
    (folder / "link-inside.md").symlink_to(content / "beta" / "real.md")
    descriptors = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    messages = {}
    for name in names:
        read, problems = listed[name].read()
        messages[name] = [p.message for p in problems] if read is None else read.text
    assert messages == {
        "gone": ["cannot read the file: No such file or directory"],
        "folder": ["expected a file, found a folder"],
        "link-to-folder": ["expected a file, found a folder"],
        "link-outside": [f"symlink to {(tmp_path / 'secret.md').resolve()}, outside the content folder"],
        "link-inside": "---\nid: beta-real\n---\n# Q?\n\nInside.\n",  # as a symlink listed as one
    }
    if descriptors is not None:
        assert len(os.listdir("/proc/self/fd")) == descriptors  # none left open by the refusals


def test_a_symlinked_card_is_read_from_where_it_was_checked_even_if_the_link_changes_again(
    content: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = content / "beta" / "real.md"
    real.write_text("---\nid: beta-real\n---\n# Q?\n\nInside.\n")
    (tmp_path / "secret.md").write_text("outside\n")
    link = content / "alpha" / "link.md"
    link.symlink_to(real)
    loaded, _ = load_content(content, read_cards=False)
    [listed] = [source for source in loaded.files if source.path.name == "link.md"]
    checked = load_module._target_inside

    def retarget_after_check(path: Path, root: Path, diagnostics: list[Diagnostic]) -> Path | None:
        target = checked(path, root, diagnostics)
        link.unlink()
        link.symlink_to(tmp_path / "secret.md")  # between the check and the open
        return target

    monkeypatch.setattr(load_module, "_target_inside", retarget_after_check)
    read, problems = listed.read()
    assert problems == []
    assert read is not None and read.text == real.read_text()
