"""The .apkg writer: pinned mods and ids, sorted media, atomic writes."""

from __future__ import annotations

import io
import sqlite3
import zipfile
from pathlib import Path

import pytest

from generator import build as pipeline
from generator.apkg.notetype import note_types
from generator.apkg.package import PackagedDeck, PackagedNote, package_bytes, write_atomic, write_package
from generator.cards.model import MediaFile
from tests.conftest import T0


def build(media: list[MediaFile]) -> bytes:
    note = PackagedNote("guid1", "basic", ("F", "B", "id"), ("t",), mod=1234, note_id=5_000, due=3)
    deck = PackagedDeck(77, "U::D", "desc", (note,))
    return package_bytes([deck], {"basic": (note_types()["basic"], 999)}, media)


def test_notes_cards_and_models_carry_the_given_times(tmp_path: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(build([]))) as archive:
        (tmp_path / "c.db").write_bytes(archive.read("collection.anki2"))
    db = sqlite3.connect(tmp_path / "c.db")
    assert db.execute("select id, guid, mod from notes").fetchall() == [(5000, "guid1", 1234)]
    assert db.execute("select id, nid, did, mod, due from cards").fetchall() == [(5001, 5000, 77, 1234, 3)]
    import json

    models = json.loads(db.execute("select models from col").fetchone()[0])
    assert models[str(note_types()["basic"].model_id)]["mod"] == 999
    db.close()


def test_a_large_collection_streamed_from_disk_holds_the_same_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from generator.apkg import package

    def tables(data: bytes, name: str) -> list[tuple[object, ...]]:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            (tmp_path / name).write_bytes(archive.read("collection.anki2"))
        db = sqlite3.connect(tmp_path / name)
        try:
            return [
                *db.execute("select * from notes"),
                *db.execute("select * from cards"),
                *db.execute("select * from col"),
            ]
        finally:
            db.close()

    in_memory = build([])
    monkeypatch.setattr(package, "LARGE_COLLECTION", 0)
    streamed = build([])
    assert streamed == build([])  # reproducible on this path too
    assert tables(streamed, "streamed.db") == tables(in_memory, "memory.db")


def test_media_are_deduplicated_and_sorted() -> None:
    media = [MediaFile("b.png", Path("b.png"), b"2"), MediaFile("a.png", Path("a.png"), b"1")] * 2
    with zipfile.ZipFile(io.BytesIO(build(media))) as archive:
        assert archive.namelist() == ["collection.anki2", "media", "0", "1"]
        assert archive.read("media") == b'{"0": "a.png", "1": "b.png"}'
        assert archive.read("1") == b"2"


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "deck.apkg"
    target.write_bytes(b"old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["deck.apkg"]


def test_tags_live_under_the_decks_namespace(content: Path, sample_cards: None, tmp_path: Path) -> None:
    """Learners' own tags never mix with ours: every tag is dl-interview::<tag or topic>."""
    pipeline.build(content, tmp_path / "dist", T0)
    with zipfile.ZipFile(tmp_path / "dist" / "all-topics.apkg") as archive:
        (tmp_path / "c.anki2").write_bytes(archive.read("collection.anki2"))
    tags = {
        t for (row,) in sqlite3.connect(tmp_path / "c.anki2").execute("select tags from notes") for t in row.split()
    }
    assert tags and all(t.startswith("dl-interview::") for t in tags), tags
    assert {"dl-interview::alpha", "dl-interview::beta", "dl-interview::code"} <= tags


def test_a_package_written_to_disk_has_the_bytes_and_digest_of_one_made_in_memory(tmp_path: Path) -> None:
    import hashlib

    media = [MediaFile("pic-1.png", tmp_path / "pic.png", b"\x89PNG fake")]
    note = PackagedNote("guid1", "basic", ("F", "B", "id"), ("t",), mod=1234, note_id=5_000, due=3)
    decks = [PackagedDeck(77, "U::D", "desc", (note,))]
    types = {"basic": (note_types()["basic"], 999)}
    sha256 = write_package(tmp_path / "a.apkg", decks, types, media)
    assert (tmp_path / "a.apkg").read_bytes() == package_bytes(decks, types, media)
    assert sha256 == hashlib.sha256(package_bytes(decks, types, media)).hexdigest()
