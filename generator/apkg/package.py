"""Write decks as `.apkg` files, byte for byte the same for the same input.

genanki builds the SQLite collection; the zip around it is written here with
fixed entry dates and order (genanki's own zip stamps the current time). Every
id and mod time comes from the caller, never from the clock.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import shutil
import sqlite3
import tempfile
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import genanki

from generator.apkg.notetype import NoteType
from generator.cards.model import MediaFile

ZIP_DATE = (1980, 1, 1, 0, 0, 0)
ZIP_LEVEL = 6
LARGE_COLLECTION = 2_000  # notes; a larger collection is built on disk to keep memory flat
SCRATCH_CACHE_KB = 16_384  # SQLite's page cache for that file (its default, 2 MB, thrashes at 50,000 notes)


@dataclass(frozen=True, slots=True)
class PackagedNote:
    guid: str
    kind: str
    fields: tuple[str, ...]
    tags: tuple[str, ...]
    mod: int
    note_id: int
    due: int  # position among new cards


@dataclass(frozen=True, slots=True)
class PackagedDeck:
    deck_id: int
    name: str
    description: str
    notes: tuple[PackagedNote, ...]


class _PinnedModel(genanki.Model):
    """A genanki model whose mod time is ours, not the build time."""

    def __init__(self, note_type: NoteType, mod: int) -> None:
        super().__init__(
            model_id=note_type.model_id,
            name=note_type.name,
            fields=[{"name": name, "id": i} for name, i in zip(note_type.fields, note_type.field_ids, strict=True)],
            templates=[
                {"name": t.name, "qfmt": t.question, "afmt": t.answer, "id": i}
                for t, i in zip(note_type.templates, note_type.template_ids, strict=True)
            ],
            css=note_type.css,
            model_type=genanki.Model.CLOZE if note_type.is_cloze else genanki.Model.FRONT_BACK,
        )
        self.pinned_mod = mod

    def to_json(self, timestamp: float, deck_id: int) -> dict[str, object]:
        data: dict[str, object] = super().to_json(self.pinned_mod, deck_id)
        return data


class _PinnedNote(genanki.Note):
    """A genanki note with its own mod time and ids (cards take the ids after the note's)."""

    def __init__(self, note: PackagedNote, model: genanki.Model) -> None:
        super().__init__(model=model, fields=list(note.fields), tags=list(note.tags), guid=note.guid, due=note.due)
        self.pinned = note

    def write_to_db(self, cursor: sqlite3.Cursor, timestamp: float, deck_id: int, id_gen: object) -> None:
        super().write_to_db(cursor, self.pinned.mod, deck_id, itertools.count(self.pinned.note_id))

    def _check_invalid_html_tags_in_fields(self) -> None:
        """Skipped: genanki only warns (a warning `_fill` silences), and our fields passed the field gate."""


def package_bytes(
    decks: Sequence[PackagedDeck],
    note_types: Mapping[str, tuple[NoteType, int]],
    media: Sequence[MediaFile],
) -> bytes:
    """Build one `.apkg` holding `decks` in memory; `note_types` maps kind to (note type, mod)."""
    buffer = io.BytesIO()
    _write_package(buffer, decks, note_types, media)
    return buffer.getvalue()


def write_package(
    target: Path,
    decks: Sequence[PackagedDeck],
    note_types: Mapping[str, tuple[NoteType, int]],
    media: Sequence[MediaFile],
) -> str:
    """Write the `.apkg` of `package_bytes` to the file `target`, never holding it in memory; return its SHA-256."""
    with open(target, "wb") as out:
        _write_package(out, decks, note_types, media)
    with open(target, "rb") as written:
        return hashlib.file_digest(written, "sha256").hexdigest()


def _write_package(
    out: BinaryIO,
    decks: Sequence[PackagedDeck],
    note_types: Mapping[str, tuple[NoteType, int]],
    media: Sequence[MediaFile],
) -> None:
    models = {kind: _PinnedModel(nt, mod) for kind, (nt, mod) in sorted(note_types.items())}
    genanki_decks = []
    for deck in decks:
        genanki_deck = genanki.Deck(deck.deck_id, deck.name, deck.description)
        for note in sorted(deck.notes, key=lambda n: n.note_id):
            genanki_deck.add_note(_PinnedNote(note, models[note.kind]))
        genanki_decks.append(genanki_deck)
    package = genanki.Package(genanki_decks)
    unique_media = sorted({m.name: m for m in media}.values(), key=lambda m: m.name)

    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL) as archive:
        if sum(len(deck.notes) for deck in decks) <= LARGE_COLLECTION:
            _add_entry(archive, "collection.anki2", _collection_bytes(package))
        else:
            _add_collection_from_file(archive, package)
        index = {str(i): m.name for i, m in enumerate(unique_media)}
        _add_entry(archive, "media", json.dumps(index, sort_keys=True).encode())
        for i, item in enumerate(unique_media):
            _add_entry(archive, str(i), item.data)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as temp:
            temp.write(data)
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def _collection_bytes(package: genanki.Package) -> bytes:
    """The SQLite collection, built in memory (no temp file) and serialised."""
    connection = sqlite3.connect(":memory:")
    try:
        _fill(connection, package)
        return connection.serialize()
    finally:
        connection.close()


def _fill(connection: sqlite3.Connection, package: genanki.Package) -> None:
    with warnings.catch_warnings():
        # genanki warns about '<' it takes for broken tags; fields are sanitised HTML already.
        warnings.simplefilter("ignore", UserWarning)
        # genanki takes a timestamp and id generator for whatever has none of
        # its own; ours have their own, so these values are never used.
        package.write_to_db(connection.cursor(), 0, itertools.count(1))
    connection.commit()


def _add_collection_from_file(archive: zipfile.ZipFile, package: genanki.Package) -> None:
    """Build a large collection on disk and stream it into the zip, so it is never in memory twice."""
    with tempfile.TemporaryDirectory() as folder:
        db_path = Path(folder) / "collection.anki2"
        connection = sqlite3.connect(db_path)
        try:
            # A scratch file, thrown away if anything fails: no rollback journal, no waiting for the disk, and
            # pages enough that the indexes stay in memory (50,000 notes: 1.7 s -> 1.0 s). None changes a byte.
            connection.execute("PRAGMA journal_mode = OFF")
            connection.execute("PRAGMA synchronous = OFF")
            connection.execute(f"PRAGMA cache_size = -{SCRATCH_CACHE_KB}")
            _fill(connection, package)
        finally:
            connection.close()
        with open(db_path, "rb") as source, archive.open(_entry_info("collection.anki2"), "w") as target:
            shutil.copyfileobj(source, target, 1 << 20)


def _add_entry(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    archive.writestr(_entry_info(name), data, compresslevel=ZIP_LEVEL)


def _entry_info(name: str) -> zipfile.ZipInfo:
    """Fixed date, system and mode, DEFLATE at a fixed level: the same bytes for the same zlib."""
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3
    info.external_attr = 0o644 << 16
    return info
