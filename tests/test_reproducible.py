"""Same sources (and manifest) give byte-identical release files."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from generator.build import build, check
from tests.conftest import T0, WriteCard

pytestmark = pytest.mark.usefixtures("sample_cards")


def read_all(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_rebuild_without_changes_is_byte_identical(content: Path, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    build(content, dist, T0)
    first = read_all(dist)
    for path in content.rglob("*"):
        os.utime(path, (T0 + 99_999, T0 + 99_999))  # touching files changes nothing
    build(content, dist, T0 + 86_400)  # nor does a later clock
    assert read_all(dist) == first
    assert sorted(first) == [
        "CHANGELOG.md",
        "README.md",
        "SHA256SUMS",
        "all-topics.apkg",
        "alpha.apkg",
        "beta.apkg",
        "identities.json",
        "manifest.json",
    ]


def test_fresh_builds_in_two_places_are_identical(content: Path, tmp_path: Path) -> None:
    build(content, tmp_path / "one", T0)
    build(content, tmp_path / "two", T0)
    assert read_all(tmp_path / "one") == read_all(tmp_path / "two")


def test_zip_entries_have_fixed_dates_and_order(content: Path, tmp_path: Path) -> None:
    build(content, tmp_path / "dist", T0)
    with zipfile.ZipFile(tmp_path / "dist" / "alpha.apkg") as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == ["collection.anki2", "media"]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}


def test_only_changed_cards_get_a_newer_mod(content: Path, write_card: WriteCard, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    first = build(content, dist, T0).manifest
    write_card("alpha", "table", "id: alpha-table\ntags: [comparison]", "# L1 or L2?\n\nL1 gives sparse weights.\n")
    second = build(content, dist, T0 + 500).manifest
    mods_before = {c.id: c.mod for c in first.cards}
    mods_after = {c.id: c.mod for c in second.cards}
    assert mods_after.pop("alpha-table") == T0 + 500
    mods_before.pop("alpha-table")
    assert mods_after == mods_before
    assert second.version == first.version == "0.0.0"  # a draft: only 'decks release' cuts versions


def test_no_temp_files_are_left_behind(content: Path, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    build(content, dist, T0)
    assert not [p for p in dist.iterdir() if p.name.startswith(".")]


def test_check_reports_the_deck_that_is_out_of_date(content: Path, write_card: WriteCard, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    build(content, dist, T0, release="auto")
    assert check(content, dist, T0 + 10)[1] == []
    write_card("beta", "reversed", "id: beta-epoch\ntags: [concept]\ntype: reversed", "# Epoch\n\nEdited.\n")
    differences = {d.file: d.reason for d in check(content, dist, T0 + 10)[1]}
    assert differences["beta.apkg"] == "cards changed: beta-epoch"
    # Only the edited deck says it holds unreleased changes: the other decks keep their bytes.
    assert "alpha.apkg" not in differences
    assert {"all-topics.apkg", "manifest.json", "SHA256SUMS", "CHANGELOG.md"} <= differences.keys()


def test_dist_readme_says_what_to_import_and_lists_every_topic(content: Path, tmp_path: Path) -> None:
    result = build(content, tmp_path / "dist", T0, release="auto")
    readme = (tmp_path / "dist" / "README.md").read_text()
    assert readme.startswith("# Test Decks: Anki decks\n") and "release 1.0.0" in readme
    assert "Import `all-topics.apkg`" in readme
    for deck in result.manifest.decks:
        assert f"| `{deck.file}` | {deck.name.split('::')[-1]} | {deck.notes} | {deck.cards} |" in readme
