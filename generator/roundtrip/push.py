"""Put the built decks into a local Anki collection, and show what differs there.

Every note reaches the collection through Anki's own package importer, so a push
and a manual File → Import of the same `.apkg` cannot disagree (GUIDs, note-type
ids, note ids, media, CSS). Two transports:

- direct: the `anki` package opens the profile's collection (which fails while
  Anki runs: Anki holds it exclusively), after a backup copy; the import updates
  notes and note types only when the package's are newer, with no scheduling, no
  deck options and no note-type merge;
- AnkiConnect, while Anki runs: `version`, a check that `importPackage` exists,
  `importPackage` with an absolute path. Notes are never added or changed one by
  one (`addNote`, `updateNoteModel`, `createModel` are never sent).

Before importing, the collection's notes of ours are read: a note whose fields or
tags differ from the build's while its modification time is not older than the
package's was edited in Anki, and Anki's "update if newer" rule leaves it alone
(reported as skipped; `--force` overwrites it). Afterwards everything is read back
and each card is reported. Notes of our note types whose card is no longer built
are tagged retired, and deleted only on request.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import unicodedata
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from generator.apkg.ids import MODEL_IDS

if TYPE_CHECKING:
    from anki.collection import Collection
    from anki.dbproxy import DBProxy

ANKICONNECT_URL = "http://127.0.0.1:8765"
ANKICONNECT_VERSION = 6
RETIRED_TAG = "dl-interview::retired"
ID_FIELD = "Id"
OUR_MODEL_IDS = frozenset(MODEL_IDS.values())
LOCKED = (
    "the Anki collection is in use (is Anki running?): close Anki and push again, "
    "or push into the running Anki with '--via ankiconnect'"
)
MISSING_ANKI = "this command needs the 'anki' package: pip install -e '.[anki]'"


class PushError(Exception):
    """A push or diff that cannot go ahead; the message is one line for the user."""


# --- the package ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShippedNote:
    """A note as a built package holds it, read back to compare with a collection (not the writer's
    `apkg.package.PackagedNote`, which carries ids and positions this side never needs)."""

    guid: str
    model_id: int
    fields: tuple[str, ...]
    tags: tuple[str, ...]
    mod: int

    @property
    def card_id(self) -> str:
        return self.fields[-1]


def read_package(path: Path) -> list[ShippedNote]:
    """The notes of a built `.apkg` (its `collection.anki2`, read with sqlite3)."""
    try:
        with zipfile.ZipFile(path) as archive:
            data = archive.read("collection.anki2")
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise PushError(f"cannot read {path}: {exc}; run 'decks build'") from None
    with tempfile.TemporaryDirectory() as folder:
        db_path = Path(folder) / "collection.anki2"
        db_path.write_bytes(data)
        connection = sqlite3.connect(db_path)
        try:
            rows = connection.execute("select guid, mid, flds, tags, mod from notes order by id").fetchall()
        finally:
            connection.close()
    return [
        ShippedNote(g, mid, tuple(flds.split("\x1f")), tuple(tags.split()), mod) for g, mid, flds, tags, mod in rows
    ]


# --- the collection ------------------------------------------------------------------------------


def anki_base_folder() -> Path:
    """Anki's folder of profiles on this system."""
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "Anki2"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "Anki2"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "Anki2"


def find_collection(profile: str | None, collection: Path | None, base: Path | None = None) -> tuple[Path, Path]:
    """The collection file and the folder its backup goes to (`--collection` wins over `--profile`)."""
    if collection is not None:
        if not collection.is_file():
            raise PushError(f"no Anki collection at {collection}")
        return collection, collection.parent
    base = base or anki_base_folder()
    profiles = sorted(p.parent.name for p in base.glob("*/collection.anki2")) if base.is_dir() else []
    if profile is None:
        if len(profiles) != 1:
            found = ", ".join(profiles) or "none"
            raise PushError(f"choose a profile with --profile NAME (profiles in {base}: {found}) or give --collection")
        profile = profiles[0]
    path = base / profile / "collection.anki2"
    if not path.is_file():
        raise PushError(f"no Anki profile '{profile}' in {base} (profiles: {', '.join(profiles) or 'none'})")
    return path, base / profile / "backups"


def backup_collection(path: Path, folder: Path, now: dt.datetime | None = None) -> Path:
    """Copy the (closed) collection: next to Anki's backups for a profile, else next to the file."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d-%H%M%S")
    if folder == path.parent:
        target = path.with_name(f"{path.name}.decks-backup-{stamp}")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{path.stem}.decks-backup-{stamp}{path.suffix}"
    shutil.copy2(path, target)
    wal = path.with_name(path.name + "-wal")
    if wal.is_file() and wal.stat().st_size:
        shutil.copy2(wal, target.with_name(target.name + "-wal"))
    return target


@dataclass(frozen=True, slots=True)
class CollectionNote:
    note_id: int
    guid: str | None  # None: not visible through this transport
    model_id: int | None
    fields: tuple[str, ...]
    tags: tuple[str, ...]
    mod: int
    card_id: str | None  # the Id field, for notes of our note types


class Target(Protocol):
    """Where the decks go: a collection opened here, or Anki through AnkiConnect."""

    name: str

    def notes(self, guids: frozenset[str]) -> list[CollectionNote]:
        """Notes of our note types, and notes with one of these GUIDs."""

    def import_package(self, package: Path, force: bool) -> None: ...

    def find_by_id_field(self, card_id: str) -> list[CollectionNote]: ...

    def add_tag(self, note_ids: Sequence[int], tag: str) -> None: ...

    def delete(self, note_ids: Sequence[int]) -> None: ...

    def close(self) -> None: ...


def _load_anki() -> Any:
    try:
        import anki.collection
    except ImportError:
        raise PushError(MISSING_ANKI) from None
    return anki.collection


def open_collection(path: Path) -> Collection:
    """Open a collection with Anki's own code; a collection Anki holds gives the one-line LOCKED error."""
    module = _load_anki()
    from anki.errors import DBError

    try:
        collection: Collection = module.Collection(str(path))
    except DBError:
        raise PushError(LOCKED) from None
    return collection


def database(collection: Collection) -> DBProxy:
    """The open collection's database (Anki types it as optional: None once closed)."""
    if collection.db is None:
        raise PushError("the Anki collection was closed")
    return collection.db


def open_target(via: str, url: str, profile: str | None, collection: Path | None, backup: bool) -> Target:
    """The transport: AnkiConnect, or the collection found from the profile (backed up first when `backup`)."""
    if via == "ankiconnect":
        return AnkiConnectTarget(url)
    path, backups = find_collection(profile, collection)
    return DirectTarget(path, backups if backup else None)


class DirectTarget:
    """The collection file, opened with the `anki` package (Anki must be closed)."""

    name = "collection"

    def __init__(self, path: Path, backup_folder: Path | None) -> None:
        self.path = path
        self.backup: Path | None = None
        collection = open_collection(path)  # fails here, before anything is copied, if Anki holds it
        if backup_folder is not None:
            collection.close()
            self.backup = backup_collection(path, backup_folder)
            collection = open_collection(path)
        self.collection = collection

    def notes(self, guids: frozenset[str]) -> list[CollectionNote]:
        rows = database(self.collection).all("select id, guid, mid, flds, tags, mod from notes")
        return [
            _collection_note(note_id, guid, mid, flds.split("\x1f"), tags.split(), mod)
            for note_id, guid, mid, flds, tags, mod in rows
            if mid in OUR_MODEL_IDS or guid in guids
        ]

    def import_package(self, package: Path, force: bool) -> None:
        from anki import import_export_pb2
        from anki.collection import ImportAnkiPackageOptions, ImportAnkiPackageRequest

        if_newer = import_export_pb2.IMPORT_ANKI_PACKAGE_UPDATE_CONDITION_IF_NEWER
        always = import_export_pb2.IMPORT_ANKI_PACKAGE_UPDATE_CONDITION_ALWAYS
        options = ImportAnkiPackageOptions(
            merge_notetypes=False,
            update_notes=always if force else if_newer,
            update_notetypes=if_newer,
            with_scheduling=False,
            with_deck_configs=False,
        )
        self.collection.import_anki_package(
            ImportAnkiPackageRequest(package_path=str(package.resolve()), options=options)
        )

    def find_by_id_field(self, card_id: str) -> list[CollectionNote]:
        ids = self.collection.find_notes(id_field_search(card_id))
        return [n for n in self.notes(frozenset()) if n.note_id in set(ids)]

    def add_tag(self, note_ids: Sequence[int], tag: str) -> None:
        from anki.notes import NoteId

        if note_ids:
            self.collection.tags.bulk_add([NoteId(i) for i in note_ids], tag)

    def delete(self, note_ids: Sequence[int]) -> None:
        from anki.notes import NoteId

        if note_ids:
            self.collection.remove_notes([NoteId(i) for i in note_ids])

    def close(self) -> None:
        self.collection.close()


def _collection_note(
    note_id: int, guid: str | None, mid: int | None, fields: Sequence[str], tags: Iterable[str], mod: int
) -> CollectionNote:
    card_id = fields[-1] if (mid in OUR_MODEL_IDS or mid is None) and fields else None
    return CollectionNote(note_id, guid, mid, tuple(fields), tuple(tags), mod, card_id)


class AnkiConnectTarget:
    """A running Anki with the AnkiConnect add-on (protocol version 6)."""

    name = "AnkiConnect"

    def __init__(self, url: str = ANKICONNECT_URL, timeout: float = 120.0) -> None:
        self.url = url
        self.timeout = timeout
        self.backup: Path | None = None
        version = self.call("version")
        if not isinstance(version, int) or version < ANKICONNECT_VERSION:
            raise PushError(f"AnkiConnect at {url} speaks version {version}; version {ANKICONNECT_VERSION} is needed")
        reflected = self.call("apiReflect", scopes=["actions"], actions=["importPackage"])
        if "importPackage" not in (reflected or {}).get("actions", []):
            raise PushError(f"AnkiConnect at {url} has no 'importPackage': update the add-on")

    def call(self, action: str, **params: Any) -> Any:
        body = json.dumps({"action": action, "version": ANKICONNECT_VERSION, "params": params}).encode()
        request = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                reply = json.loads(response.read().decode("utf-8"))
        except (OSError, ValueError) as exc:
            raise PushError(f"AnkiConnect is not answering at {self.url} ({exc}): start Anki with the add-on") from None
        if not isinstance(reply, dict) or reply.get("error") is not None:
            error = reply.get("error") if isinstance(reply, dict) else reply
            raise PushError(f"AnkiConnect refused '{action}': {error}")
        return reply.get("result")

    def _info(self, note_ids: Sequence[int], model_id: int | None) -> list[CollectionNote]:
        notes = []
        for info in self.call("notesInfo", notes=list(note_ids)) if note_ids else []:
            if not info:
                continue
            ordered = sorted(info["fields"].values(), key=lambda f: f["order"])
            fields = [f["value"] for f in ordered]
            notes.append(_collection_note(info["noteId"], None, model_id, fields, info["tags"], info["mod"]))
        return notes

    def notes(self, guids: frozenset[str]) -> list[CollectionNote]:
        notes = []
        for model_id in sorted(OUR_MODEL_IDS):
            notes.extend(self._info(self.call("findNotes", query=f"mid:{model_id}"), model_id))
        return notes

    def import_package(self, package: Path, force: bool) -> None:
        if force:
            raise PushError("--force needs the direct transport: close Anki and push without '--via ankiconnect'")
        if self.call("importPackage", path=str(package.resolve())) is not True:
            raise PushError("AnkiConnect could not import the package (is a profile open in Anki?)")

    def find_by_id_field(self, card_id: str) -> list[CollectionNote]:
        found = []
        for model_id in sorted(OUR_MODEL_IDS):
            ids = self.call("findNotes", query=f"mid:{model_id} {id_field_search(card_id)}")
            found.extend(self._info(ids, model_id))
        return found

    def add_tag(self, note_ids: Sequence[int], tag: str) -> None:
        if note_ids:
            self.call("addTags", notes=list(note_ids), tags=tag)

    def delete(self, note_ids: Sequence[int]) -> None:
        if note_ids:
            self.call("deleteNotes", notes=list(note_ids))

    def close(self) -> None:
        pass


def id_field_search(card_id: str) -> str:
    """An Anki search for notes whose Id field is exactly `card_id` (wildcards and quotes escaped)."""
    escaped = "".join("\\" + c if c in '\\"*_' else c for c in card_id)
    return f'"{ID_FIELD}:{escaped}"'


# --- push ----------------------------------------------------------------------------------------


@dataclass
class PushReport:
    new: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    edited: list[str] = field(default_factory=list)  # edited in Anki: skipped (overwritten with force)
    overwritten: list[str] = field(default_factory=list)  # edited in Anki, replaced by --force
    conflicting: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    backup: Path | None = None

    def summary(self) -> str:
        parts = [
            f"{len(self.new)} new",
            f"{len(self.updated)} updated",
            f"{len(self.unchanged)} unchanged",
            f"{len(self.edited)} skipped (edited in Anki)",
        ]
        if self.overwritten:
            parts.append(f"{len(self.overwritten)} edited in Anki and overwritten (--force)")
        parts += [f"{len(self.conflicting)} conflicting", f"{len(self.retired)} retired"]
        if self.pruned:
            parts.append(f"{len(self.pruned)} deleted")
        return ", ".join(parts)

    def lines(self) -> list[str]:
        """One line per card that is not unchanged."""
        rows: list[str] = []
        for label, ids in (
            ("new", self.new),
            ("updated", self.updated),
            ("skipped, edited in Anki (see 'decks diff --anki'; --force overwrites)", self.edited),
            ("overwritten, was edited in Anki", self.overwritten),
            ("conflicting (not updated: its note type in Anki differs)", self.conflicting),
            (f"retired (tagged {RETIRED_TAG}; --prune deletes)", self.retired),
            ("deleted", self.pruned),
        ):
            rows.extend(f"{label}: {card_id}" for card_id in ids)
        return rows


def _normal(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(unicodedata.normalize("NFC", v.replace("\r\n", "\n").replace("\r", "")) for v in values)


def same_content(note: CollectionNote, package: ShippedNote) -> bool:
    """Fields and tags as the build ships them (the retired tag aside; Anki normalises text on import)."""
    tags = {t.casefold() for t in note.tags if t != RETIRED_TAG}
    return _normal(note.fields) == _normal(package.fields) and tags == {t.casefold() for t in package.tags}


def push(
    target: Target,
    package: Path,
    full_build: Path,
    *,
    force: bool = False,
    prune: bool = False,
    confirm_prune: Callable[[list[str]], bool] = lambda ids: False,
) -> PushReport:
    """Import `package` through `target` and report per card; `full_build` (all-topics) decides what is retired."""
    incoming = read_package(package)
    built = read_package(full_build) if full_build != package else incoming
    guids = frozenset(n.guid for n in incoming)
    by_guid = target.name == "collection"

    def key(note: CollectionNote | ShippedNote) -> str | None:
        if isinstance(note, ShippedNote):
            return note.guid if by_guid else note.card_id
        return note.guid if by_guid else note.card_id

    before = {key(n): n for n in target.notes(guids)}
    protected = {
        p.guid for p in incoming if (b := before.get(key(p))) is not None and b.mod >= p.mod and not same_content(b, p)
    }
    target.import_package(package, force)
    after = {key(n): n for n in target.notes(guids)}

    report = PushReport(backup=getattr(target, "backup", None))
    for p in incoming:
        b, a = before.get(key(p)), after.get(key(p))
        arrived = a is not None and a.model_id in (p.model_id, None) and same_content(a, p)
        if b is None:
            (report.new if arrived else report.conflicting).append(p.card_id)
        elif b.model_id not in (p.model_id, None) and not arrived:
            report.conflicting.append(p.card_id)
        elif same_content(b, p):
            report.unchanged.append(p.card_id)
        elif p.guid in protected:
            (report.overwritten if arrived else report.edited).append(p.card_id)
        else:
            (report.updated if arrived else report.conflicting).append(p.card_id)

    built_guids = {n.guid for n in built}
    built_ids = {n.card_id for n in built}
    retired = [
        n
        for n in after.values()
        if n.model_id in OUR_MODEL_IDS | {None}
        and n.card_id
        and n.card_id not in built_ids
        and (n.guid is None or n.guid not in built_guids)
    ]
    retired.sort(key=lambda n: n.card_id or "")
    report.retired = [n.card_id or "" for n in retired]
    target.add_tag([n.note_id for n in retired if RETIRED_TAG not in n.tags], RETIRED_TAG)
    if prune and retired and confirm_prune(report.retired):
        target.delete([n.note_id for n in retired])
        report.pruned = list(report.retired)
    return report


# --- diff ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldDiff:
    card_id: str
    field: str
    diff: str  # unified diff of the text, build first


def anki_differences(target: Target, package: Path, field_names: Callable[[int], Sequence[str]]) -> list[FieldDiff]:
    """Every field of every built card whose text in the collection differs from the build's (matched by Id)."""
    import difflib

    result = []
    for p in read_package(package):
        names = field_names(p.model_id)
        for note in target.find_by_id_field(p.card_id):
            for name, ours, theirs in zip(names, p.fields, note.fields, strict=False):
                if name == ID_FIELD:
                    continue
                left, right = html_to_text(ours), html_to_text(theirs)
                if left == right:
                    continue
                lines = difflib.unified_diff(
                    left.splitlines(), right.splitlines(), f"build: {p.card_id} {name}", f"anki: {p.card_id} {name}",
                    lineterm="",
                )  # fmt: skip
                result.append(FieldDiff(p.card_id, name, "\n".join(lines)))
    return result


_BLOCKS = {"p", "div", "br", "li", "tr", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "table", "ul", "ol",
           "blockquote", "dt", "dd"}  # fmt: skip


class _TextParser(HTMLParser):
    """HTML to readable text, the same way for both sides of a diff."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.pre = 0
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self.skip += 1
        elif tag == "pre":
            self.pre += 1
        if tag in _BLOCKS:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")
        elif tag in ("td", "th"):
            self.parts.append(" | ")
        elif tag == "img":
            self.parts.append(f"[image: {dict(attrs).get('src') or ''}]")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skip = max(0, self.skip - 1)
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if not self.pre:
            data = re.sub(r"\s+", " ", data)
            if not self.parts or self.parts[-1].endswith("\n"):
                data = data.lstrip()
        self.parts.append(data)


def html_to_text(value: str) -> str:
    """Field HTML as plain text: blocks on their own lines, code kept as written, entities decoded."""
    parser = _TextParser()
    parser.feed(value)
    parser.close()
    text = "\n".join(line.rstrip() for line in "".join(parser.parts).split("\n"))
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip("\n")
