"""The manifest: what `dist/` holds now, what the last release held, and the mod times promised.

Anki updates a note on import only when the package's note mod time is strictly
newer than the collection's. The manifest, committed next to the decks, keeps per
card its content hash and mod: an unchanged card keeps its mod (so rebuilds are
byte-identical and users' own edits survive), a changed card gets a newer one.
Note types are treated the same way. The clock (`now`) is read only for changes.

Each record also keeps what the last cut release had (`released_hash`, ...), so
the changes since that release can be listed at any time as one Unreleased
section, however many draft builds came in between.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from generator.diagnostics import Diagnostic, Location, error

MANIFEST_FORMAT = 2
NO_RELEASE = "0.0.0"
FIRST_VERSION = "1.0.0"
VERSION = re.compile(r"^(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})$")
KEY = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")  # card ids and topic keys, as the sources allow them
SHA256 = re.compile(r"^([0-9a-f]{64})?$")
MAX_MOD = 253_402_300_799  # 9999-12-31, the last second Anki's importer and Python's dates agree on


@dataclass(frozen=True, slots=True)
class CardRecord:
    id: str
    guid_id: str  # the id the note's GUID comes from: its oldest id, kept across renames
    path: str  # the card file, relative to the content folder ('' if not yet known)
    topic: str
    question: str
    hash: str
    mod: int
    note_id: int
    released_hash: str | None  # None: added since the last release
    released_topic: str | None


@dataclass(frozen=True, slots=True)
class RemovedRecord:
    """A card of the last release that the sources no longer have."""

    id: str
    topic: str
    question: str


@dataclass(frozen=True, slots=True)
class NoteTypeRecord:
    kind: str
    model_id: int
    name: str
    hash: str
    mod: int
    released_hash: str | None


@dataclass(frozen=True, slots=True)
class DeckRecord:
    topic: str
    name: str
    file: str
    deck_id: int
    sha256: str
    notes: int
    cards: int
    released_name: str | None  # None: a topic added since the last release


@dataclass(frozen=True, slots=True)
class Manifest:
    version: str  # the last cut release
    decks: tuple[DeckRecord, ...]
    notetypes: tuple[NoteTypeRecord, ...]
    cards: tuple[CardRecord, ...]
    removed: tuple[RemovedRecord, ...] = ()

    def card_index(self) -> dict[str, CardRecord]:
        return {c.id: c for c in self.cards}

    def deck(self, topic: str) -> DeckRecord | None:
        return next((d for d in self.decks if d.topic == topic), None)


EMPTY = Manifest(NO_RELEASE, (), (), ())


@dataclass(frozen=True, slots=True)
class Changes:
    """How the cards differ from the last release's."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    moved: tuple[str, ...]
    notetypes_changed: tuple[str, ...]
    decks_changed: tuple[str, ...] = ()  # topics added, dropped or renamed

    @property
    def any(self) -> bool:
        return bool(
            self.added or self.changed or self.removed or self.moved or self.notetypes_changed or self.decks_changed
        )


def unreleased_changes(manifest: Manifest) -> Changes:
    """Everything that differs from the last cut release."""
    cards = manifest.cards
    return Changes(
        added=tuple(c.id for c in cards if c.released_hash is None),
        changed=tuple(c.id for c in cards if c.released_hash is not None and c.released_hash != c.hash),
        removed=tuple(r.id for r in manifest.removed),
        moved=tuple(c.id for c in cards if c.released_topic is not None and c.released_topic != c.topic),
        notetypes_changed=tuple(n.kind for n in manifest.notetypes if n.released_hash != n.hash),
        decks_changed=tuple(d.topic for d in manifest.decks if d.released_name != d.name),
    )


def bump(version: str, changes: Changes, part: str | None = None) -> str:
    """The next semantic version: removals major, additions and moves minor, edits patch."""
    if version == NO_RELEASE:
        return FIRST_VERSION
    major, minor, patch = (int(p) for p in version.split("."))
    if part is None:
        if changes.removed:
            part = "major"
        elif changes.added or changes.moved or changes.decks_changed:
            part = "minor"
        else:
            part = "patch"
    if part == "major":
        return f"{major + 1}.0.0"
    if part == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def read_manifest(path: Path) -> tuple[Manifest | None, list[Diagnostic]]:
    """Read a manifest; a missing file means no previous release."""
    if not path.exists():
        return EMPTY, []
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
        manifest = _from_json(data)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        return None, [
            error(
                Location(path),
                f"cannot read the manifest: {exc}",
                "restore it from version control (git checkout -- dist/manifest.json)",
            )
        ]
    return manifest, []


def manifest_json(manifest: Manifest) -> str:
    """Serialise deterministically: sorted keys, one record per line (readable diffs, and fast to write)."""
    return "".join(manifest_pieces(manifest))


def manifest_pieces(manifest: Manifest) -> Iterator[str]:
    """`manifest_json` a line at a time, so a build writes it without holding it whole (3.5 MB at 10,000 cards)."""
    sections = {
        "decks": manifest.decks,
        "notetypes": manifest.notetypes,
        "cards": manifest.cards,
        "removed": manifest.removed,
    }
    yield f'{{\n  "format": {MANIFEST_FORMAT},\n  "version": {json.dumps(manifest.version)},\n'
    for index, (name, records) in enumerate(sorted(sections.items())):
        comma = "," if index < len(sections) - 1 else ""
        if not records:
            yield f'  "{name}": []{comma}\n'
            continue
        yield f'  "{name}": [\n'
        last = len(records) - 1
        for position, record in enumerate(records):
            yield f"    {_record_json(record)}{',' if position < last else ''}\n"
        yield f"  ]{comma}\n"
    yield "}\n"


def _record_json(record: object) -> str:
    values = {name: getattr(record, name) for name in sorted(record.__slots__)}  # type: ignore[attr-defined]  # our dataclasses use slots
    return _RECORD_ENCODER.encode(values)


# What json.dumps(ensure_ascii=False, separators=(", ", ": ")) does, without making an encoder per record.
_RECORD_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))


def _from_json(data: Any) -> Manifest:
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    file_format = data.get("format")
    if file_format not in (1, MANIFEST_FORMAT):
        raise ValueError(f"unsupported manifest format {file_format!r}")
    version = data["version"]
    if not isinstance(version, str) or not VERSION.match(version):
        raise ValueError(f"invalid version {version!r}")
    if file_format == 1:
        # Format 1 was written only by cut releases: everything in it is released.
        for card in _list(data, "cards"):
            if isinstance(card, dict):
                card.update(
                    guid_id=card.get("id"), path="", released_hash=card.get("hash"), released_topic=card.get("topic")
                )
        for notetype in _list(data, "notetypes"):
            if isinstance(notetype, dict):
                notetype["released_hash"] = notetype.get("hash")
        for deck in _list(data, "decks"):
            if isinstance(deck, dict):
                deck["released_name"] = deck.get("name")
    manifest = Manifest(
        version=version,
        decks=tuple(_record(DeckRecord, d) for d in _list(data, "decks")),
        notetypes=tuple(_record(NoteTypeRecord, n) for n in _list(data, "notetypes")),
        cards=tuple(_record(CardRecord, c) for c in _list(data, "cards")),
        removed=tuple(_record(RemovedRecord, r) for r in data.get("removed", [])),
    )
    _check_names(manifest)
    return manifest


def _check_names(manifest: Manifest) -> None:
    """Names the build turns into paths or prints must be names the build itself makes.

    The manifest is committed, so a pull request can edit it: a deck `file` such
    as '../x' would otherwise be deleted or replaced outside dist/, and an id
    holding control characters would reach the maintainer's terminal.
    """
    for deck in manifest.decks:
        if not KEY.match(deck.topic) or deck.file != f"{deck.topic}.apkg":
            raise ValueError(f"deck record {deck.topic!r} names the file {deck.file!r}, not '<topic>.apkg'"[:200])
        if not SHA256.match(deck.sha256):
            raise ValueError(f"deck record {deck.topic!r} has an invalid sha256"[:200])
    for card in manifest.cards:
        for value in (card.id, card.guid_id, card.topic, card.released_topic or card.topic):
            if not KEY.match(value):
                raise ValueError(f"card record has an invalid id or topic {value!r}"[:200])
        if card.path and (card.path.startswith("/") or ".." in card.path.split("/") or not card.path.isprintable()):
            raise ValueError(f"card record {card.id!r} has an invalid path {card.path!r}"[:200])
    for removed in manifest.removed:
        if not KEY.match(removed.id) or not KEY.match(removed.topic):
            raise ValueError(f"removed record has an invalid id or topic {removed.id!r}"[:200])


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data[key]
    if not isinstance(value, list):
        raise ValueError(f"'{key}' must be a list")
    return value


R = TypeVar("R")
_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {"int": int, "str": str, "str | None": (str, type(None))}
FieldSpec = tuple[str, type | tuple[type, ...], int]  # name, allowed types, largest allowed int


def _field_specs(cls: Any) -> tuple[frozenset[str], tuple[FieldSpec, ...]]:
    specs = tuple(
        (f.name, _FIELD_TYPES[str(f.type)], MAX_MOD * 1000 if f.name.endswith("id") else MAX_MOD) for f in fields(cls)
    )
    return frozenset(name for name, _, _ in specs), specs


def _record(cls: type[R], data: Any) -> R:
    """Build a record, checking every field's type, so a damaged manifest is an error here, not a crash later."""
    if not isinstance(data, dict):
        raise ValueError(f"a {cls.__name__} must be an object")
    names, specs = _SPECS[cls]
    if data.keys() != names:
        raise ValueError(f"a {cls.__name__} needs exactly the keys {', '.join(sorted(names))}")
    for name, expected, largest in specs:
        value = data[name]
        if not isinstance(value, expected) or value is True or value is False:
            raise ValueError(f"{cls.__name__}.{name} has the wrong type: {value!r}"[:200])
        if type(value) is int and not 0 <= value <= largest:
            raise ValueError(f"{cls.__name__}.{name} is out of range: {value!r}")
    return cls(**data)


# Worked out once: per record type, its keys and each field's type and range.
_SPECS: dict[type, tuple[frozenset[str], tuple[FieldSpec, ...]]] = {
    cls: _field_specs(cls) for cls in (CardRecord, RemovedRecord, NoteTypeRecord, DeckRecord)
}
