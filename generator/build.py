"""The pipeline: load → parse → validate → render → plan → package → write.

Everything is read, checked and rendered before anything is written: if any
card has an error, `dist/` is left exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from generator.changelog import updated_changelog
from generator.diagnostics import BuildFailed, Diagnostic, Location, error, warning
from generator.ids import deck_id, note_guid
from generator.ledger import (
    EMPTY,
    Changes,
    DeckRecord,
    Manifest,
    compare,
    manifest_json,
    next_version,
    plan_cards,
    plan_notetype,
    read_manifest,
)
from generator.load import Content, load_content
from generator.model import Card, DeckSet, RenderedCard, Topic
from generator.notetype import NoteType, note_types
from generator.package import PackagedDeck, PackagedNote, package_bytes, write_atomic
from generator.parse import parse_card_file
from generator.render import render_card
from generator.validate import check_unique_ids, validate_file

MANIFEST_FILE = "manifest.json"
CHANGELOG_FILE = "CHANGELOG.md"
CHECKSUMS_FILE = "SHA256SUMS"
ALL_TOPICS_FILE = "all-topics.apkg"
CLOZE_NUMBER = re.compile(r"\{\{c(\d+)::")


@dataclass(frozen=True, slots=True)
class BuildResult:
    """A release computed in memory: its files, manifest and what changed."""

    manifest: Manifest
    previous: Manifest
    changes: Changes
    files: dict[str, bytes]
    cards: tuple[RenderedCard, ...]
    warnings: tuple[Diagnostic, ...]


@dataclass(frozen=True, slots=True)
class Difference:
    """A file in dist/ that does not match what the sources build."""

    file: str
    reason: str


def compile_release(
    content_dir: Path,
    previous: Manifest,
    now: int,
    *,
    previous_changelog: str = "",
    strict: bool = False,
    allow_rename: bool = False,
) -> BuildResult:
    """Build every file of a release in memory; raise BuildFailed listing all errors.

    `previous` is the manifest of the last release (EMPTY for none); `now` is the
    mod time given to changed cards; `previous_changelog` the text to extend.
    """
    content, diagnostics = load_content(content_dir)
    cards = _validated_cards(content, diagnostics) if content else []
    rendered: list[RenderedCard] = []
    for card in cards:
        result, problems = render_card(card)
        diagnostics.extend(problems)
        rendered.append(result)
    diagnostics.extend(_check_duplicate_questions(rendered))
    if content is not None:
        diagnostics.extend(_check_deck_names(content.deckset, previous, allow_rename))
    errors = [d for d in diagnostics if d.severity == "error" or strict]
    if errors or content is None:
        raise BuildFailed(tuple(diagnostics))

    types = note_types()
    type_records = tuple(
        plan_notetype(kind, nt.model_id, nt.name, nt.definition_hash(), previous, now) for kind, nt in types.items()
    )
    notes = {r.card.id: _note_content(r, types[r.card.type]) for r in rendered}
    card_records = plan_cards(
        [(r.card.id, r.card.topic, r.question_text, _content_hash(notes[r.card.id])) for r in rendered],
        previous,
        now,
    )
    changes = compare(previous, card_records, type_records)
    topics_changed = {t.key for t in content.deckset.topics} != {d.topic for d in previous.decks}
    version = next_version(previous, changes, topics_changed and previous is not EMPTY)

    mods = {r.id: r for r in card_records}
    type_mods = {t.kind: (types[t.kind], t.mod) for t in type_records}  # type: ignore[index]
    files: dict[str, bytes] = {}
    deck_records: list[DeckRecord] = []
    packaged: list[tuple[PackagedDeck, list[RenderedCard]]] = []
    for topic in content.deckset.topics:
        topic_cards = [r for r in rendered if r.card.topic == topic.key]
        deck = PackagedDeck(
            deck_id(topic.key),
            content.deckset.deck_name(topic),
            _description(topic, content.deckset, version),
            tuple(
                PackagedNote(
                    guid=note_guid(r.card.id),
                    kind=r.card.type,
                    fields=notes[r.card.id][1],
                    tags=notes[r.card.id][2],
                    mod=mods[r.card.id].mod,
                    note_id=mods[r.card.id].note_id,
                    due=position,
                )
                for position, r in enumerate(topic_cards)
            ),
        )
        packaged.append((deck, topic_cards))
        data = package_bytes([deck], type_mods, [m for r in topic_cards for m in r.media])
        file_name = f"{topic.key}.apkg"
        files[file_name] = data
        deck_records.append(
            DeckRecord(
                topic=topic.key,
                name=deck.name,
                file=file_name,
                deck_id=deck.deck_id,
                sha256=hashlib.sha256(data).hexdigest(),
                notes=len(topic_cards),
                cards=sum(_card_count(r.card) for r in topic_cards),
            )
        )
    files[ALL_TOPICS_FILE] = package_bytes(
        [deck for deck, _ in packaged], type_mods, [m for _, rs in packaged for r in rs for m in r.media]
    )
    manifest = Manifest(version, tuple(deck_records), type_records, card_records)
    files[MANIFEST_FILE] = manifest_json(manifest).encode()
    files[CHANGELOG_FILE] = updated_changelog(previous_changelog, previous, manifest, changes, now).encode()
    files[CHECKSUMS_FILE] = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n"
        for name, data in sorted(files.items())
        if name.endswith(".apkg")
    ).encode()
    warnings = tuple(d for d in diagnostics if d.severity == "warning")
    return BuildResult(manifest, previous, changes, files, tuple(rendered), warnings)


def build(
    content_dir: Path, dist_dir: Path, now: int, *, strict: bool = False, allow_rename: bool = False
) -> BuildResult:
    """Build the release and write it to `dist_dir`, each file atomically."""
    previous = _previous_manifest(dist_dir)
    result = compile_release(
        content_dir,
        previous,
        now,
        previous_changelog=_read_text(dist_dir / CHANGELOG_FILE),
        strict=strict,
        allow_rename=allow_rename,
    )
    for name, data in sorted(result.files.items()):
        target = dist_dir / name
        if not target.is_file() or target.read_bytes() != data:
            write_atomic(target, data)
    for stale in sorted(dist_dir.glob("*.apkg")):
        if stale.name not in result.files:
            stale.unlink()
    return result


def check(content_dir: Path, dist_dir: Path, now: int, *, strict: bool = False) -> tuple[BuildResult, list[Difference]]:
    """Rebuild in memory and list every file in `dist_dir` that differs from it."""
    previous = _previous_manifest(dist_dir)
    result = compile_release(
        content_dir, previous, now, previous_changelog=_read_text(dist_dir / CHANGELOG_FILE), strict=strict
    )
    differences = []
    for name, data in sorted(result.files.items()):
        target = dist_dir / name
        if not target.is_file():
            differences.append(Difference(name, "missing: run 'decks build'"))
        elif target.read_bytes() != data:
            differences.append(Difference(name, _why_different(name, result)))
    for stale in sorted(dist_dir.glob("*.apkg")):
        if stale.name not in result.files:
            differences.append(Difference(stale.name, "no longer built from any topic: run 'decks build'"))
    return result, differences


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def _previous_manifest(dist_dir: Path) -> Manifest:
    previous, problems = read_manifest(dist_dir / MANIFEST_FILE)
    if previous is None:
        raise BuildFailed(tuple(problems))
    return previous


def _why_different(name: str, result: BuildResult) -> str:
    changes = result.changes
    topic = name.removesuffix(".apkg")
    records = {c.id: c for c in (*result.previous.cards, *result.manifest.cards)}
    if name.endswith(".apkg") and name != ALL_TOPICS_FILE:

        def keep(ids: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(i for i in ids if records[i].topic == topic)

        changes = Changes(
            keep(changes.added),
            keep(changes.changed),
            keep(changes.removed),
            keep(changes.moved),
            changes.notetypes_changed,
        )
    parts = []
    for label, ids in (("added", changes.added), ("changed", changes.changed), ("removed", changes.removed)):
        if ids:
            parts.append(f"cards {label}: {', '.join(ids)}")
    if changes.notetypes_changed:
        parts.append(f"note types changed: {', '.join(changes.notetypes_changed)}")
    if result.manifest.version != result.previous.version:
        parts.append(f"release {result.previous.version} becomes {result.manifest.version}")
    return "; ".join(parts) or "contents differ from a fresh build: run 'decks build'"


def _validated_cards(content: Content, diagnostics: list[Diagnostic]) -> list[Card]:
    cards = []
    for source in content.files:
        parsed, problems = parse_card_file(source.path, source.text)
        diagnostics.extend(problems)
        if parsed is None:
            continue
        card, problems = validate_file(parsed, source.topic)
        diagnostics.extend(problems)
        if card is not None:
            cards.append(card)
            if not card.sources:
                diagnostics.append(
                    warning(
                        Location(card.path, card.id_line, 1),
                        "card has no 'source'",
                        "name the seed items it answers, e.g. source: [001_109fc0eff3c94634.txt#26]",
                    )
                )
    diagnostics.extend(check_unique_ids(cards))
    return cards


def _check_duplicate_questions(rendered: list[RenderedCard]) -> list[Diagnostic]:
    seen: dict[str, Card] = {}
    problems = []
    for item in rendered:
        key = item.question_text.casefold()
        if key in seen:
            problems.append(
                warning(
                    Location(item.card.path, item.card.front_line, 1),
                    f"same question as {seen[key].path}",
                    "merge the two cards, or make the questions distinct",
                )
            )
        else:
            seen[key] = item.card
    return problems


def _check_deck_names(deckset: DeckSet, previous: Manifest, allow_rename: bool) -> list[Diagnostic]:
    """A renamed deck strands every existing card in the old deck: make it deliberate."""
    if allow_rename:
        return []
    problems = []
    for topic in deckset.topics:
        old = previous.deck(topic.key)
        new_name = deckset.deck_name(topic)
        if old is not None and old.name != new_name:
            problems.append(
                error(
                    Location(topic.config_path, 1, 1),
                    f"deck would be renamed from '{old.name}' to '{new_name}'",
                    "Anki matches decks by name: users' existing cards stay in the old deck. "
                    "Restore the name, or rebuild with --allow-rename if the rename is deliberate",
                )
            )
    return problems


def _note_content(rendered: RenderedCard, note_type: NoteType) -> tuple[int, tuple[str, ...], tuple[str, ...]]:
    card = rendered.card
    tags = tuple(sorted({*card.tags, card.topic}))
    return note_type.model_id, rendered.fields, tags


def _content_hash(note: tuple[int, tuple[str, ...], tuple[str, ...]]) -> str:
    return hashlib.sha256(json.dumps(note).encode()).hexdigest()


def _card_count(card: Card) -> int:
    if card.type == "cloze":
        return len(set(CLOZE_NUMBER.findall(card.front)))
    return 2 if card.type == "reversed" else 1


def _description(topic: Topic, deckset: DeckSet, version: str) -> str:
    return f"{topic.description}<br><br><small>{deckset.name} decks, release {version}.</small>"
