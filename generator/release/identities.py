"""The identity ledger: every card id ever released, and what became of it.

A learner's review history hangs on a note's GUID, and the GUID on the
lineage of ids a card has had. The ledger (`dist/identities.json`, one record
per line, written only by `decks release`) remembers every id of every
release: the GUID and note id it stands for, its file and question when last
released, and its state: live, renamed to another id, or removed. Because it
forgets nothing, the rules hold for any sequence of edits, not just one:

- a GUID belongs to one live note;
- an id once released names that note forever: it is never given to another card;
- a rename stays recorded after its `previous_ids` line is deleted;
- a removed id or question stays removed, until a card revives it explicitly
  (`previous_ids: [old-id]`), which brings back its GUID and so its history;
- a card that takes the question another released id had, while its own id had
  another question, is an id swap: an error naming both;
- `previous_ids` works whatever else changed in the same edit.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from generator.diagnostics import Diagnostic, Location, error
from generator.release.manifest import CardRecord, RemovedRecord

LEDGER_FILE = "identities.json"
LEDGER_FORMAT = 1
KEY = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
VERSION = re.compile(r"^[0-9]{1,6}\.[0-9]{1,6}\.[0-9]{1,6}$")
State = Literal["live", "renamed", "removed"]
STATES: tuple[State, ...] = ("live", "renamed", "removed")


@dataclass(frozen=True, slots=True)
class Identity:
    """One id as the releases left it."""

    id: str
    guid: str  # the note's Anki GUID
    guid_id: str  # the oldest id of the lineage, which the GUID is derived from
    note_id: int
    file: str  # the card file when last released, relative to the content folder
    question: str  # the question when last released, as plain text
    fingerprint: str  # of the question, for recognising it under another id
    state: State
    successor: str | None  # the id a renamed id became
    release: str  # the release that last changed this record

    @property
    def topic(self) -> str:
        return self.file.split("/", 1)[0] if "/" in self.file else ""


@dataclass(frozen=True, slots=True)
class Ledger:
    identities: tuple[Identity, ...] = ()

    def index(self) -> dict[str, Identity]:
        return {i.id: i for i in self.identities}

    def terminal(self, identity: Identity) -> Identity:
        """Where a renamed id's lineage ends now: a live or removed id (renames never loop)."""
        index = self.index()
        seen = {identity.id}
        while identity.state == "renamed" and identity.successor in index and identity.successor not in seen:
            identity = index[identity.successor]
            seen.add(identity.id)
        return identity

    def lineage(self, card_id: str) -> list[Identity]:
        """Every id of the note `card_id` belongs to, oldest first."""
        index = self.index()
        if card_id not in index:
            return []
        end = self.terminal(index[card_id])
        members = [i for i in self.identities if self.terminal(i).id == end.id]
        return sorted(members, key=lambda i: (i.id != i.guid_id, i.state == "live", i.release, i.id))


EMPTY = Ledger()


def fingerprint(question: str) -> str:
    """A question's identity for matching: case, spacing and trailing punctuation ignored."""
    text = " ".join(question.casefold().split()).rstrip("?.!: ")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Claim:
    """What the sources say about one card, as far as identities go."""

    id: str
    previous_ids: tuple[str, ...]
    path: str
    question: str
    location: Location


@dataclass(frozen=True, slots=True)
class Resolution:
    """Which released note each card continues (None: a note no release had), and what is gone."""

    notes: dict[str, Identity | None]  # card id -> the terminal identity it continues
    vanished: tuple[Identity, ...]  # live identities no card continues: removals
    problems: tuple[Diagnostic, ...]


def resolve(claims: Sequence[Claim], ledger: Ledger) -> Resolution:
    """Match every card to the released note it continues, enforcing the ledger's rules."""
    index = ledger.index()
    current = {c.id for c in claims}
    problems: list[Diagnostic] = []
    notes: dict[str, Identity | None] = {}
    for claim in claims:
        notes[claim.id] = _continued_note(claim, ledger, index, current, problems)

    claimed = {n.id for n in notes.values() if n is not None}
    by_fingerprint_live = {i.fingerprint: i for i in ledger.identities if i.state == "live"}
    by_fingerprint_removed = {i.fingerprint: i for i in ledger.identities if i.state == "removed"}
    owners: dict[str, Claim] = {}
    for claim in claims:
        note = notes[claim.id]
        mark = fingerprint(claim.question)
        if note is None:
            removed = by_fingerprint_removed.get(mark)
            gone = by_fingerprint_live.get(mark)
            if removed is not None:
                problems.append(_readded(claim, removed))
            elif gone is not None and gone.id not in claimed and gone.file != claim.path:
                # (in the same file, the planner names it as a changed id)
                problems.append(_unannounced_rename(claim, gone))
            continue
        if note.id in owners:
            other = owners[note.id]
            problems.append(
                error(
                    claim.location,
                    f"cards '{other.id}' and '{claim.id}' both continue the released note '{note.id}' "
                    f"(GUID {note.guid})",
                    "a note belongs to one card: keep the previous_ids line on one of them only",
                )
            )
        owners[note.id] = claim
        swapped = by_fingerprint_live.get(mark)
        if (
            note.state == "live"
            and note.id == claim.id
            and mark != note.fingerprint
            and swapped is not None
            and swapped.id != claim.id
        ):
            problems.append(
                error(
                    claim.location,
                    f"card '{claim.id}' now asks the question released under '{swapped.id}' "
                    f"({swapped.file}), while '{claim.id}' asked another one",
                    f"ids stay with their notes: give this file back its id ('{swapped.id}'?); "
                    "users' review history would move to the wrong question",
                )
            )
    vanished = tuple(i for i in ledger.identities if i.state == "live" and i.id not in claimed)
    return Resolution(notes, vanished, tuple(problems))


def _continued_note(
    claim: Claim, ledger: Ledger, index: dict[str, Identity], current: set[str], problems: list[Diagnostic]
) -> Identity | None:
    own = index.get(claim.id)
    if own is not None and own.state == "live":
        return own
    if own is not None:
        end = ledger.terminal(own)
        if own.state == "renamed" and end.state == "live" and end.id in claim.previous_ids and end.id not in current:
            return end  # renamed back, declared: the same note
        if own.state == "renamed":
            hint = "ids are never reused: give this card a new id"
            if end.id not in current and end.state == "live":
                hint += f", or rename '{end.id}' back by listing it in previous_ids"
            problems.append(
                error(
                    claim.location,
                    f"id '{claim.id}' was renamed to '{own.successor}' in release {own.release} and names "
                    f"that note forever (GUID {own.guid})",
                    hint,
                )
            )
            return None
        problems.append(
            error(
                claim.location,
                f"id '{claim.id}' belongs to a card removed in release {own.release}",
                f"ids are never reused: for a new card choose a new id; to bring the removed card back with its "
                f"review history, give it a new id and 'previous_ids: [{claim.id}]'",
            )
        )
        return None
    ends = {ledger.terminal(index[p]).id: ledger.terminal(index[p]) for p in claim.previous_ids if p in index}
    if not ends:
        return None
    if len(ends) > 1:
        problems.append(
            error(
                claim.location,
                f"previous_ids name two different released notes: {', '.join(sorted(ends))}",
                "a card continues one note: keep the ids of one lineage",
            )
        )
        return None
    (end,) = ends.values()
    if end.state == "live" and end.id in current:
        problems.append(
            error(
                claim.location,
                f"previous id of '{claim.id}' belongs to the note that '{end.id}' still is",
                f"'{end.id}' is a card of its own: remove it from previous_ids, or remove that card",
            )
        )
        return None
    return end  # a rename of a live note, or the revival of a removed one


def _readded(claim: Claim, removed: Identity) -> Diagnostic:
    return error(
        claim.location,
        f"same question as '{removed.id}', removed in release {removed.release}",
        f"users may still have that card with its history: bring it back with 'previous_ids: [{removed.id}]', "
        "or reword the question if this is a different card",
    )


def _unannounced_rename(claim: Claim, gone: Identity) -> Diagnostic:
    return error(
        claim.location,
        f"same question as the released card '{gone.id}' ({gone.file}), which is gone from the sources",
        f"if this is that card under a new id, declare 'previous_ids: [{gone.id}]' so users keep its history; "
        "otherwise reword the question",
    )


def advance(
    ledger: Ledger,
    resolution: Resolution,
    cards: Iterable[tuple[Claim, str, int, bool]],
    version: str,
) -> Ledger:
    """The ledger after releasing `version`: (claim, guid_id, note_id, changed) for every card of the release."""
    from generator.apkg.ids import note_guid

    records = ledger.index()
    for claim, guid_id, note_id, changed in cards:
        continued = resolution.notes.get(claim.id)
        old = records.get(claim.id)
        if continued is not None and continued.id != claim.id:
            records[continued.id] = replace(continued, state="renamed", successor=claim.id, release=version)
        mark = fingerprint(claim.question)
        same = (
            old is not None
            and old.state == "live"
            and not changed
            and (old.file, old.fingerprint, old.note_id) == (claim.path, mark, note_id)
        )
        if not same:
            records[claim.id] = Identity(
                claim.id, note_guid(guid_id), guid_id, note_id, claim.path, claim.question, mark, "live", None,
                version,
            )  # fmt: skip
    for gone in resolution.vanished:
        records[gone.id] = replace(gone, state="removed", successor=None, release=version)
    return Ledger(tuple(sorted(records.values(), key=lambda i: i.id)))


# --- the file ---------------------------------------------------------------------------------------


def ledger_json(ledger: Ledger) -> str:
    """One record per line, sorted by id: readable diffs, and two branches merge line by line."""
    names = [f.name for f in fields(Identity)]
    rows = ",\n".join(
        "    " + json.dumps({n: getattr(i, n) for n in names}, ensure_ascii=False, separators=(", ", ": "))
        for i in ledger.identities
    )
    body = f"[\n{rows}\n  ]" if rows else "[]"
    return f'{{\n  "format": {LEDGER_FORMAT},\n  "identities": {body}\n}}\n'


def read_ledger(path: Path) -> tuple[Ledger | None, list[Diagnostic]]:
    """Read the ledger; a missing file is None with no problem (the caller derives one)."""
    if not path.exists():
        return None, []
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
        return _from_json(data), []
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        return None, [
            error(
                Location(path),
                f"cannot read the identity ledger: {exc}",
                f"restore it from version control (git checkout -- {path.name}); only 'decks release' writes it",
            )
        ]


def _from_json(data: Any) -> Ledger:
    if not isinstance(data, dict) or data.get("format") != LEDGER_FORMAT:
        raise ValueError(f"expected an object with format {LEDGER_FORMAT} and a list of identities")
    if not isinstance(data.get("identities"), list):
        raise ValueError(f"expected an object with format {LEDGER_FORMAT} and a list of identities")
    names = {f.name for f in fields(Identity)}
    identities = []
    for row in data["identities"]:
        if not isinstance(row, dict) or row.keys() != names:
            raise ValueError(f"an identity needs exactly the keys {', '.join(sorted(names))}")
        identity = Identity(**row)
        strings = (identity.id, identity.guid, identity.guid_id, identity.file, identity.question)
        if not all(isinstance(s, str) for s in strings):
            raise ValueError(f"invalid identity record {row.get('id')!r}"[:200])
        if not KEY.match(identity.id) or not KEY.match(identity.guid_id) or type(identity.note_id) is not int:
            raise ValueError(f"invalid identity record {identity.id!r}"[:200])
        if identity.state not in STATES or not VERSION.match(str(identity.release)):
            raise ValueError(f"invalid identity record {identity.id!r}")
        if (identity.state == "renamed") != isinstance(identity.successor, str):
            raise ValueError(f"identity {identity.id!r}: only a renamed id has a successor")
        if not identity.file.isprintable() or ".." in identity.file.split("/"):
            raise ValueError(f"identity {identity.id!r} has an invalid file {identity.file!r}")
        identities.append(identity)
    ledger = Ledger(tuple(identities))
    if len(ledger.index()) != len(identities):
        raise ValueError("an id appears twice")
    live_guids = [i.guid for i in identities if i.state == "live"]
    if len(set(live_guids)) != len(live_guids):
        raise ValueError("two live ids share a GUID")
    return ledger


def seed(manifest_cards: Iterable[CardRecord], removed: Iterable[RemovedRecord], version: str) -> Ledger:
    """A ledger for a `dist/` made before ledgers existed: every card of the last release live.

    `removed` are cards of that release that a draft dropped: still live in it.
    """
    from generator.apkg.ids import note_guid

    records = []
    for card in manifest_cards:
        if card.released_hash is None:
            continue  # a draft's new card: nothing released yet
        records.append(
            Identity(card.id, note_guid(card.guid_id), card.guid_id, card.note_id, card.path, card.question,
                     fingerprint(card.question), "live", None, version)
        )  # fmt: skip
    for gone in removed:
        records.append(
            Identity(gone.id, note_guid(gone.id), gone.id, 0, f"{gone.topic}/", gone.question,
                     fingerprint(gone.question), "live", None, version)
        )  # fmt: skip
    return Ledger(tuple(sorted(records, key=lambda i: i.id)))
