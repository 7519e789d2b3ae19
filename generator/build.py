"""The pipeline: compile the cards → plan against the manifest → package → publish.

`decks build` keeps `dist/` current as a draft: the changes since the last cut
release are listed under "Unreleased" in the changelog, however many builds it
takes. `decks release` cuts a version from them. Everything is read, checked
and rendered before anything is written: if any card has an error, `dist/` is
left exactly as it was.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from generator.cache import (
    RACY_MARGIN_NS,
    FileStatus,
    RenderCache,
    environment_key,
    package_environment_key,
    tree_fingerprint,
    tree_status,
)
from generator.diagnostics import BuildFailed, Diagnostic, Location, error
from generator.identities import LEDGER_FILE, Ledger, advance, ledger_json, read_ledger, seed
from generator.ledger import (
    Changes,
    DeckRecord,
    Manifest,
    bump,
    manifest_json,
    read_manifest,
    unreleased_changes,
)
from generator.load import deck_name_key
from generator.model import DeckSet, MediaFile, RenderedCard, Topic
from generator.publish import PublishError, publish
from generator.release import (
    UNRELEASED,
    CardState,
    changes_section,
    mark_released,
    plan_cards,
    plan_notetype,
    release_label,
    release_title,
    released_name,
    removal_warnings,
    updated_changelog,
)

if TYPE_CHECKING:
    from generator.compile import Progress
    from generator.notetype import NoteType
    from generator.package import PackagedDeck

MANIFEST_FILE = "manifest.json"
CHANGELOG_FILE = "CHANGELOG.md"
CHECKSUMS_FILE = "SHA256SUMS"
README_FILE = "README.md"
ALL_TOPICS_FILE = "all-topics.apkg"
# Every tag the decks add lives under one root, so it never mixes with a learner's own tags.
TAG_NAMESPACE = "dl-interview"
RELEASE_FILES = (MANIFEST_FILE, CHANGELOG_FILE, CHECKSUMS_FILE, ALL_TOPICS_FILE, LEDGER_FILE, README_FILE)


@dataclass(frozen=True, slots=True)
class Options:
    """How to build: strictness, deliberate renames and removals, speed."""

    strict: bool = False
    allow_rename: bool = False
    allow_removal: bool = False
    jobs: int = 1
    cache: RenderCache | None = None
    progress: Progress | None = None


@dataclass(frozen=True, slots=True)
class BuildResult:
    """A draft or release computed in memory: its files, manifest and what is unreleased.

    When `up_to_date`, nothing was compiled (sources, generator and dist/ were as
    the last build left them): `files` and `cards` are empty, the rest is read back.
    """

    manifest: Manifest
    previous: Manifest
    changes: Changes  # since the last cut release (after a release: what it contained)
    files: dict[str, bytes]
    cards: tuple[RenderedCard, ...]
    warnings: tuple[Diagnostic, ...]
    cache_hits: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, for 'decks build -v'
    up_to_date: bool = False


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
    ledger: Ledger | None = None,
    previous_changelog: str = "",
    options: Options = Options(),
    release: str | None = None,
    package: bool = True,
) -> BuildResult:
    """Build every file of a draft (or, with `release` = 'auto'|'major'|'minor'|'patch', a release) in memory.

    `previous` is the manifest in dist/ (EMPTY for none) and `ledger` the identity
    ledger (None: derived from `previous`, for a dist/ older than ledgers); `now`
    is the mod time given to changed cards. Raises BuildFailed listing every problem.
    """
    # The rendering and packaging libraries load here, not at import: an up-to-date build never needs them.
    from generator.compile import compile_cards
    from generator.ids import deck_id, note_guid, umbrella_deck_id
    from generator.notetype import note_types
    from generator.package import PackagedDeck, PackagedNote

    started = time.perf_counter()
    compiled = compile_cards(content_dir, jobs=options.jobs, cache=options.cache, progress=options.progress)
    compiled_at = time.perf_counter()
    diagnostics = list(compiled.diagnostics)
    content = compiled.content
    if content is None or compiled.errors:
        raise BuildFailed(tuple(diagnostics))
    rendered = compiled.cards
    if ledger is None:
        ledger = seed(previous.cards, previous.removed, previous.version)
    types = note_types()
    root_prefix = str(content.deckset.config_path.parent) + os.sep
    notes = {r.card.id: _note_content(r, types[r.card.type].model_id) for r in rendered}
    states = [
        CardState(
            id=r.card.id,
            previous_ids=r.card.previous_ids,
            path=_relative(r.card.path, root_prefix),
            topic=r.card.topic,
            question=r.question_text,
            hash=_content_hash(notes[r.card.id]),
            location=Location(r.card.path, r.card.id_line, 1),
        )
        for r in rendered
    ]
    card_records, removed, problems, resolution = plan_cards(states, previous, now, ledger)
    diagnostics.extend(problems)
    diagnostics.extend(_check_deck_names(content.deckset, previous, options.allow_rename))
    removal_location = Location(content.deckset.config_path.parent)
    if removed and not options.allow_removal:  # with --allow-removal it is deliberate: nothing to warn about
        if release is None:
            diagnostics.extend(removal_warnings(removed, removal_location))
        else:
            diagnostics.extend(
                error(w.location, w.message, "publish the removal with 'decks release --allow-removal'")
                for w in removal_warnings(removed, removal_location)
            )
    type_records = tuple(
        plan_notetype(kind, nt.model_id, nt.name, nt.definition_hash(), previous, now) for kind, nt in types.items()
    )
    if any(d.severity == "error" or options.strict for d in diagnostics):
        raise BuildFailed(tuple(diagnostics))

    draft_decks = tuple(
        DeckRecord(t.key, content.deckset.deck_name(t), f"{t.key}.apkg", deck_id(t.key), "", 0, 0,
                   released_name(t.key, previous))
        for t in content.deckset.topics
    )  # fmt: skip
    manifest = Manifest(previous.version, draft_decks, type_records, card_records, removed)
    changes = unreleased_changes(manifest)
    changelog_section = changes_section(UNRELEASED, manifest, changes) if changes.any else None
    stamp = None
    if release is not None:
        if not changes.any:
            raise BuildFailed(
                (
                    error(
                        Location(content_dir),
                        f"nothing to release: the sources match release {previous.version}",
                        "edit or add cards, run 'decks build', then release",
                    ),
                )
            )
        stamp = bump(previous.version, changes, None if release == "auto" else release)
        changelog_section = changes_section(release_title(stamp, now), manifest, changes)
        by_id = {s.id: s for s in states}
        ledger = advance(
            ledger,
            resolution,
            ((by_id[c.id].claim(), c.guid_id, c.note_id, c.released_hash != c.hash) for c in manifest.cards),
            stamp,
        )
        manifest = mark_released(manifest, stamp)
    unreleased_topics = _topics_with_changes(manifest, unreleased_changes(manifest))

    files: dict[str, bytes] = {}
    deck_records = list(manifest.decks)
    if package:
        records = {c.id: c for c in manifest.cards}
        type_mods = {t.kind: (types[t.kind], t.mod) for t in type_records}  # type: ignore[index]  # kind is a CardType
        packaged: list[tuple[PackagedDeck, list[RenderedCard]]] = []
        for index, topic in enumerate(content.deckset.topics):
            topic_cards = [r for r in rendered if r.card.topic == topic.key]
            deck = PackagedDeck(
                deck_id(topic.key),
                content.deckset.deck_name(topic),
                _description(topic, content.deckset, release_label(manifest.version, topic.key in unreleased_topics)),
                tuple(
                    PackagedNote(
                        guid=note_guid(records[r.card.id].guid_id),
                        kind=r.card.type,
                        fields=r.fields,
                        tags=notes[r.card.id][2],
                        mod=records[r.card.id].mod,
                        note_id=records[r.card.id].note_id,
                        due=position,
                    )
                    for position, r in enumerate(topic_cards)
                ),
            )
            packaged.append((deck, topic_cards))
            data = _package([deck], type_mods, [m for r in topic_cards for m in r.media], options.cache)
            files[f"{topic.key}.apkg"] = data
            deck_records[index] = replace(
                deck_records[index],
                sha256=hashlib.sha256(data).hexdigest(),
                notes=len(topic_cards),
                cards=sum(r.card_count for r in topic_cards),
            )
        umbrella = PackagedDeck(
            umbrella_deck_id(content.deckset.name), content.deckset.name, _umbrella_description(content.deckset), ()
        )
        files[ALL_TOPICS_FILE] = _package(
            [umbrella, *(deck for deck, _ in packaged)], type_mods,
            [m for _, rs in packaged for r in rs for m in r.media], options.cache,
        )  # fmt: skip
    manifest = replace(manifest, decks=tuple(deck_records))
    if package:
        files[README_FILE] = dist_readme(content.deckset, manifest).encode()
        files[CHECKSUMS_FILE] = "".join(
            f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items())
        ).encode()
        files[CHANGELOG_FILE] = updated_changelog(previous_changelog, changelog_section, stamp=stamp).encode()
        files[MANIFEST_FILE] = manifest_json(manifest).encode()
        files[LEDGER_FILE] = ledger_json(ledger).encode()
    warnings = tuple(d for d in diagnostics if d.severity == "warning")
    timings = {"compile": compiled_at - started, "plan and package": time.perf_counter() - compiled_at}
    return BuildResult(manifest, previous, changes, files, rendered, warnings, compiled.cache_hits, timings)


def build(
    content_dir: Path, dist_dir: Path, now: int, *, options: Options = Options(), release: str | None = None
) -> BuildResult:
    """Build the draft (or cut a release) and publish it to `dist_dir` as one unit."""
    stamp_name = None
    # One look at the sources, before compiling: an edit made during this build makes the next one full.
    tree = tree_status(content_dir.resolve()) if options.cache is not None and release is None else None
    if tree is not None:
        stamp_name = hashlib.sha256(f"{content_dir.resolve()}\0{dist_dir.resolve()}".encode()).hexdigest()
        if (unchanged := _unchanged(tree, dist_dir, options, stamp_name)) is not None:
            return unchanged
    racy_after = time.time_ns() - RACY_MARGIN_NS
    fingerprint = _fingerprint(tree, options, racy_after) if tree is not None else None
    previous = _previous_manifest(dist_dir)
    try:
        result = compile_release(
            content_dir, previous, now, ledger=_ledger(dist_dir),
            previous_changelog=_read_text(dist_dir / CHANGELOG_FILE), options=options, release=release,
        )  # fmt: skip
        owned = {d.file for d in previous.decks} | set(RELEASE_FILES)
        try:
            publish(dist_dir, result.files, owned, last=MANIFEST_FILE)
        except PublishError as failure:
            raise BuildFailed((error(Location(dist_dir), str(failure), "check free space and permissions"),)) from None
        if stamp_name is not None and fingerprint is not None and options.cache is not None:
            options.cache.save_stamp(stamp_name, _stamp(fingerprint, racy_after, result))
    finally:
        if options.cache is not None:
            options.cache.flush()  # packages and the stamp, in one transaction
    return result


def _fingerprint(tree: list[FileStatus], options: Options, racy_after: int) -> str | None:
    """The sources, the generator and the options that shape the output, as one hash (None: cannot tell)."""
    files = tree_fingerprint(tree, racy_after)
    if files is None:
        return None
    what = f"{files}\0{environment_key()}\0{package_environment_key()}\0{options.strict}\0{options.allow_rename}"
    return hashlib.sha256(what.encode()).hexdigest()


def _stamp(fingerprint: str, racy_after: int, result: BuildResult) -> dict[str, object]:
    return {
        "fingerprint": fingerprint,
        "racy_after": racy_after,
        "dist": {name: hashlib.sha256(data).hexdigest() for name, data in result.files.items()},
        "warnings": [
            [d.severity, str(d.location.path), d.location.line, d.location.col, d.message, d.hint]
            for d in result.warnings
        ],
    }


def _unchanged(tree: list[FileStatus], dist_dir: Path, options: Options, stamp_name: str) -> BuildResult | None:
    """The last build's result, when neither the sources, the generator nor dist/ changed since (like make)."""
    assert options.cache is not None
    stamp = options.cache.load_stamp(stamp_name)
    if stamp is None or not isinstance(stamp.get("racy_after"), int):
        return None
    if _fingerprint(tree, options, stamp["racy_after"]) != stamp.get("fingerprint"):
        return None
    try:
        for name, digest in stamp["dist"].items():
            if hashlib.sha256((dist_dir / name).read_bytes()).hexdigest() != digest:
                return None
        warnings = tuple(
            Diagnostic(severity, Location(Path(path), line, col), message, hint)
            for severity, path, line, col, message, hint in stamp["warnings"]
        )
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    if options.strict and warnings:
        raise BuildFailed(warnings)
    manifest = _previous_manifest(dist_dir)
    notes = sum(d.notes for d in manifest.decks)
    return BuildResult(manifest, manifest, unreleased_changes(manifest), {}, (), warnings, notes, up_to_date=True)


def check(
    content_dir: Path, dist_dir: Path, now: int, *, options: Options = Options(), package: bool = True
) -> tuple[BuildResult, list[Difference]]:
    """Build in memory and list every file in `dist_dir` that differs (without packaging: only validate)."""
    previous = _previous_manifest(dist_dir)
    result = compile_release(
        content_dir, previous, now, ledger=_ledger(dist_dir), previous_changelog=_read_text(dist_dir / CHANGELOG_FILE),
        options=options, package=package,
    )  # fmt: skip
    if options.cache is not None:
        options.cache.flush()
    differences = []
    for name, data in sorted(result.files.items()):
        target = dist_dir / name
        if not target.is_file():
            differences.append(Difference(name, "missing: run 'decks build'"))
        elif target.read_bytes() != data:
            differences.append(Difference(name, _why_different(name, result)))
    if package:
        for deck in previous.decks:
            if deck.file not in result.files and (dist_dir / deck.file).exists():
                differences.append(Difference(deck.file, "no longer built from any topic: run 'decks build'"))
    return result, differences


def _relative(path: Path, root_prefix: str) -> str:
    """The card's path relative to the content folder, as the manifest records it (string work: fast)."""
    text = str(path)
    return text[len(root_prefix) :].replace(os.sep, "/") if text.startswith(root_prefix) else text


def _package(
    decks: list[PackagedDeck],
    type_mods: dict[str, tuple[NoteType, int]],
    media: list[MediaFile],
    cache: RenderCache | None,
) -> bytes:
    """Package the decks, or take the package made last time from exactly the same inputs."""
    from generator.package import package_bytes

    if cache is None:
        return package_bytes(decks, type_mods, media)
    digest = hashlib.sha256(package_environment_key().encode())
    for deck in decks:
        digest.update(json.dumps([deck.deck_id, deck.name, deck.description]).encode())
        for note in deck.notes:
            parts = (note.guid, note.kind, *note.fields, *note.tags, str(note.mod), str(note.note_id), str(note.due))
            digest.update("\0".join(parts).encode() + b"\1")
    for kind, (note_type, mod) in sorted(type_mods.items()):
        digest.update(f"{kind} {note_type.definition_hash()} {mod}\n".encode())
    for item in media:
        digest.update(f"{item.name}\n".encode())  # the name holds the content hash
    key = digest.hexdigest()
    data = cache.get_package(key)
    if data is None:
        data = package_bytes(decks, type_mods, media)
        cache.put_package(key, data)
    return data


def _read_text(path: Path) -> str:
    if not path.exists():
        return ""
    try:
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BuildFailed(
            (error(Location(path), f"cannot read the changelog: {exc}", "restore it from version control"),)
        ) from None


def _previous_manifest(dist_dir: Path) -> Manifest:
    previous, problems = read_manifest(dist_dir / MANIFEST_FILE)
    if previous is None:
        raise BuildFailed(tuple(problems))
    return previous


def _ledger(dist_dir: Path) -> Ledger | None:
    ledger, problems = read_ledger(dist_dir / LEDGER_FILE)
    if problems:
        raise BuildFailed(tuple(problems))
    return ledger


def _why_different(name: str, result: BuildResult) -> str:
    previous = result.previous.card_index()
    current = result.manifest.card_index()
    topic = name.removesuffix(".apkg")
    in_deck = name.endswith(".apkg") and name != ALL_TOPICS_FILE

    def touched(card_id: str) -> bool:
        return not in_deck or current[card_id].topic == topic

    added = [i for i in current if i not in previous and touched(i)]
    changed = [i for i in current if i in previous and previous[i].hash != current[i].hash and touched(i)]
    removed = [i for i in previous if i not in current and (not in_deck or previous[i].topic == topic)]
    parts = [
        f"cards {label}: {', '.join(sorted(ids))}"
        for label, ids in (("added", added), ("changed", changed), ("removed", removed))
        if ids
    ]
    if result.manifest.version != result.previous.version:
        parts.append(f"release {result.previous.version} becomes {result.manifest.version}")
    if not parts and in_deck:
        return "the deck description changed"
    return "; ".join(parts) or "contents differ from a fresh build: run 'decks build'"


def _topics_with_changes(manifest: Manifest, changes: Changes) -> set[str]:
    """The topics whose deck differs from the last release: only their descriptions say so.

    A one-card edit then changes that card's deck (and all-topics.apkg), not every deck.
    """
    if changes.notetypes_changed:
        return {d.topic for d in manifest.decks}
    cards = manifest.card_index()
    topics = {cards[i].topic for i in (*changes.added, *changes.changed, *changes.moved)}
    topics |= {cards[i].released_topic or "" for i in changes.moved}
    topics |= {r.topic for r in manifest.removed}
    return topics | set(changes.decks_changed)


def _check_deck_names(deckset: DeckSet, previous: Manifest, allow_rename: bool) -> list[Diagnostic]:
    """A renamed deck strands every existing card in the old deck: make it deliberate."""
    if allow_rename:
        return []
    problems = []
    for topic in deckset.topics:
        old = previous.deck(topic.key)
        new_name = deckset.deck_name(topic)
        if old is not None and deck_name_key(old.name) != deck_name_key(new_name):
            problems.append(
                error(
                    Location(topic.config_path, 1, 1),
                    f"deck would be renamed from '{old.name}' to '{new_name}'",
                    "Anki matches decks by name: users' existing cards stay in the old deck. "
                    "Restore the name, or rebuild with --allow-rename if the rename is deliberate",
                )
            )
    return problems


def _note_content(rendered: RenderedCard, model_id: int) -> tuple[int, tuple[str, ...], tuple[str, ...]]:
    card = rendered.card
    tags = tuple(sorted(f"{TAG_NAMESPACE}::{tag}" for tag in {*card.tags, card.topic}))
    return model_id, rendered.fields, tags


def _content_hash(note: tuple[int, tuple[str, ...], tuple[str, ...]]) -> str:
    return hashlib.sha256(json.dumps(note).encode()).hexdigest()


def dist_readme(deckset: DeckSet, manifest: Manifest) -> str:
    """dist/README.md: which file to import, and every topic with its counts (generated, never edited)."""
    release = "no release yet" if manifest.version == "0.0.0" else f"release {manifest.version}"
    rows = [
        f"| `{d.file}` | {d.name.split('::', 1)[-1]} | {d.notes} | {d.cards} |"
        for d in sorted(manifest.decks, key=lambda d: [t.key for t in deckset.topics].index(d.topic))
    ]
    notes, cards = sum(d.notes for d in manifest.decks), sum(d.cards for d in manifest.decks)
    return "\n".join(
        [
            f"# {deckset.name}: Anki decks",
            "",
            f"Built by `decks build` ({release}; unreleased changes are listed in `CHANGELOG.md`).",
            "",
            f"**Import `{ALL_TOPICS_FILE}`** for every topic, or one `<topic>.apkg` for a single topic: Anki "
            "desktop *File → Import*, AnkiDroid *Import*, AnkiMobile: open the file. Keep the default import "
            "options. To update, import the newer file the same way: your reviews and scheduling are kept.",
            "",
            "| file | deck | notes | cards |",
            "| --- | --- | ---: | ---: |",
            *rows,
            f"| `{ALL_TOPICS_FILE}` | every topic | {notes} | {cards} |",
            "",
            f"`{CHECKSUMS_FILE}` holds the SHA-256 of every file; `{LEDGER_FILE}` every card id ever released.",
            "",
        ]
    )


def _umbrella_description(deckset: DeckSet) -> str:
    """The umbrella deck's description: the authors' text (escaped) and the topics it holds."""
    topics = ", ".join(html.escape(t.name) for t in deckset.topics)
    text = f"{html.escape(deckset.description)}<br><br>" if deckset.description else ""
    return f"{text}<small>Topics: {topics}.</small>"


def _description(topic: Topic, deckset: DeckSet, label: str) -> str:
    """The deck description (HTML in Anki): the authors' text is escaped, never markup."""
    return f"{html.escape(topic.description)}<br><br><small>{html.escape(deckset.name)} decks, {label}.</small>"
