"""The release manifest: what each release contained, and the mod times it promised.

Anki updates a note on import only when the package's note mod time is strictly
newer than the collection's. The manifest, committed next to the decks, keeps per
card its content hash and mod: an unchanged card keeps its mod (so rebuilds are
byte-identical and users' own edits survive), a changed card gets a newer one.
Note types are treated the same way. The clock (`now`) is read only for changes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from generator.diagnostics import Diagnostic, Location, error
from generator.ids import NOTE_ID_SPACING

MANIFEST_FORMAT = 1
FIRST_VERSION = "1.0.0"


@dataclass(frozen=True, slots=True)
class CardRecord:
    id: str
    topic: str
    question: str
    hash: str
    mod: int
    note_id: int


@dataclass(frozen=True, slots=True)
class NoteTypeRecord:
    kind: str
    model_id: int
    name: str
    hash: str
    mod: int


@dataclass(frozen=True, slots=True)
class DeckRecord:
    topic: str
    name: str
    file: str
    deck_id: int
    sha256: str
    notes: int
    cards: int


@dataclass(frozen=True, slots=True)
class Manifest:
    version: str
    decks: tuple[DeckRecord, ...]
    notetypes: tuple[NoteTypeRecord, ...]
    cards: tuple[CardRecord, ...]

    def card(self, card_id: str) -> CardRecord | None:
        return next((c for c in self.cards if c.id == card_id), None)

    def deck(self, topic: str) -> DeckRecord | None:
        return next((d for d in self.decks if d.topic == topic), None)


EMPTY = Manifest("0.0.0", (), (), ())


@dataclass(frozen=True, slots=True)
class Changes:
    """How one release's cards differ from the previous one's."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    moved: tuple[str, ...]
    notetypes_changed: tuple[str, ...]

    @property
    def any(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.moved or self.notetypes_changed)


def read_manifest(path: Path) -> tuple[Manifest | None, list[Diagnostic]]:
    """Read a manifest; a missing file means no previous release."""
    if not path.is_file():
        return EMPTY, []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"unsupported manifest format {data.get('format')!r}")
        manifest = Manifest(
            version=str(data["version"]),
            decks=tuple(DeckRecord(**d) for d in data["decks"]),
            notetypes=tuple(NoteTypeRecord(**n) for n in data["notetypes"]),
            cards=tuple(CardRecord(**c) for c in data["cards"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        return None, [
            error(
                Location(path),
                f"cannot read the manifest: {exc}",
                "restore it from version control (git checkout -- dist/manifest.json)",
            )
        ]
    return manifest, []


def manifest_json(manifest: Manifest) -> str:
    """Serialise deterministically (sorted keys and records, fixed indentation)."""
    data = {
        "format": MANIFEST_FORMAT,
        "version": manifest.version,
        "decks": [asdict(d) for d in manifest.decks],
        "notetypes": [asdict(n) for n in manifest.notetypes],
        "cards": [asdict(c) for c in manifest.cards],
    }
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def plan_cards(current: list[tuple[str, str, str, str]], previous: Manifest, now: int) -> tuple[CardRecord, ...]:
    """Give each (id, topic, question, hash) its mod and note id, keeping those of unchanged cards."""
    records: list[CardRecord] = []
    new_ids: list[tuple[str, str, str, str]] = []
    for card_id, topic, question, content_hash in sorted(current):
        old = previous.card(card_id)
        if old is None:
            new_ids.append((card_id, topic, question, content_hash))
        elif old.hash == content_hash:
            records.append(replace(old, topic=topic, question=question))
        else:
            records.append(replace(old, topic=topic, question=question, hash=content_hash, mod=max(old.mod + 1, now)))
    # New notes get ids after every id used so far, so they never collide with old ones.
    used = [c.note_id for c in previous.cards]
    base = max([now * 1000, *(i + NOTE_ID_SPACING for i in used)])
    base += -base % NOTE_ID_SPACING
    for index, (card_id, topic, question, content_hash) in enumerate(new_ids):
        note_id = base + index * NOTE_ID_SPACING
        records.append(CardRecord(card_id, topic, question, content_hash, now, note_id))
    return tuple(sorted(records, key=lambda c: c.id))


def plan_notetype(
    kind: str, model_id: int, name: str, content_hash: str, previous: Manifest, now: int
) -> NoteTypeRecord:
    """Keep a note type's mod while its definition is unchanged; move it forward otherwise."""
    old = next((n for n in previous.notetypes if n.kind == kind), None)
    if old is not None and old.hash == content_hash:
        return replace(old, name=name, model_id=model_id)
    mod = now if old is None else max(old.mod + 1, now)
    return NoteTypeRecord(kind, model_id, name, content_hash, mod)


def compare(previous: Manifest, cards: tuple[CardRecord, ...], notetypes: tuple[NoteTypeRecord, ...]) -> Changes:
    """List what changed between the previous release and this one."""
    old = {c.id: c for c in previous.cards}
    new = {c.id: c for c in cards}
    old_types = {n.kind: n.hash for n in previous.notetypes}
    return Changes(
        added=tuple(sorted(new.keys() - old.keys())),
        changed=tuple(sorted(i for i in new.keys() & old.keys() if new[i].hash != old[i].hash)),
        removed=tuple(sorted(old.keys() - new.keys())),
        moved=tuple(sorted(i for i in new.keys() & old.keys() if new[i].topic != old[i].topic)),
        notetypes_changed=tuple(sorted(n.kind for n in notetypes if old_types.get(n.kind) != n.hash)),
    )


def next_version(previous: Manifest, changes: Changes, topics_changed: bool) -> str:
    """Semantic version of the content: removals major, additions minor, edits patch."""
    if previous is EMPTY or not previous.cards:
        return FIRST_VERSION
    major, minor, patch = (int(part) for part in previous.version.split("."))
    if changes.removed:
        return f"{major + 1}.0.0"
    if changes.added or changes.moved or topics_changed:
        return f"{major}.{minor + 1}.0"
    if changes.changed or changes.notetypes_changed:
        return f"{major}.{minor}.{patch + 1}"
    return previous.version
