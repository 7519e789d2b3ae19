"""The pipeline: compile the cards → plan against the manifest → package → publish.

`decks build` keeps `dist/` current as a draft: the changes since the last cut
release are listed under "Unreleased" in the changelog, however many builds it
takes. `decks release` cuts a version from them. Everything is read, checked
and rendered before anything is written: if any card has an error, `dist/` is
left exactly as it was.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import html
import json
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, astuple, dataclass, field, replace
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
from generator.release.identities import LEDGER_FILE, Ledger, advance, ledger_json, read_ledger, seed
from generator.release.manifest import (
    Changes,
    DeckRecord,
    Manifest,
    bump,
    manifest_pieces,
    read_manifest,
    unreleased_changes,
)
from generator.release.plan import (
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
from generator.release.publish import Output, PublishError, StagedFile, digest, publish, same_content

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

    from generator.apkg.notetype import NoteType
    from generator.apkg.package import PackagedDeck
    from generator.cards.compile import Compiled, Progress
    from generator.cards.model import Card, CardType, DeckSet, MediaFile, RenderedCard, Topic

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
    the last build left them): `files` and `cards` are empty, and `manifest` holds
    the version and deck records only, as the last build's signed stamp recorded
    them (dist/manifest.json itself is unchanged: its hash was checked).
    """

    manifest: Manifest
    previous: Manifest
    changes: Changes  # since the last cut release (after a release: what it contained)
    files: dict[str, Output]  # from `build`: packages and manifest as StagedFiles (in dist/ by then); else in memory
    cards: tuple[RenderedCard, ...]  # from `build`: without their Markdown (`Card.without_markdown`)
    warnings: tuple[Diagnostic, ...]
    cache_hits: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, for 'decks build -v'
    up_to_date: bool = False


@dataclass(frozen=True, slots=True)
class Difference:
    """A file in dist/ that does not match what the sources build."""

    file: str
    reason: str


@dataclass(frozen=True, slots=True)
class Note:
    """A rendered card as the note it becomes: its note type, namespaced tags and content hash."""

    rendered: RenderedCard
    model_id: int
    tags: tuple[str, ...]
    hash: str  # of (model id, fields, tags): a changed hash gives the note a newer mod time

    @property
    def card(self) -> Card:
        return self.rendered.card


@dataclass(frozen=True, slots=True)
class Plan:
    """The manifest of this build and what follows from it, before anything is packaged."""

    manifest: Manifest
    changes: Changes  # since the last cut release (for a release: what it contains)
    ledger: Ledger
    changelog_section: str | None
    stamp: str | None  # the version cut, for a release
    unreleased_topics: frozenset[str]  # whose deck descriptions say "plus unreleased changes"
    warnings: tuple[Diagnostic, ...]


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
    keep_markdown: bool = True,
    package_dir: Path | None = None,
) -> BuildResult:
    """Build every file of a draft (or, with `release` = 'auto'|'major'|'minor'|'patch', a release).

    `previous` is the manifest in dist/ (EMPTY for none) and `ledger` the identity
    ledger (None: derived from `previous`, for a dist/ older than ledgers); `now`
    is the mod time given to changed cards. The packages and the manifest are written
    into `package_dir` (the result holds them as `StagedFile`s), or with none, returned
    in memory like every other file. Without `keep_markdown`, the result's cards
    have only their fields, not their Markdown. Raises BuildFailed listing every problem.
    """
    with contextlib.ExitStack() as scratch:
        folder = package_dir
        if folder is None and package:
            folder = Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix="decks-packages-")))
        result = _compile_release(
            content_dir, previous, now, ledger, previous_changelog, options, release, package, keep_markdown,
            folder or Path(),  # no folder: nothing is packaged
        )  # fmt: skip
        if package_dir is None:  # read the packages back before their scratch folder goes
            result = replace(result, files={name: _in_memory(data) for name, data in result.files.items()})
        return result


def _in_memory(output: Output) -> bytes:
    return output.path.read_bytes() if isinstance(output, StagedFile) else output


def _published(output: Output, target: Path) -> Output:
    """A staged file as it now lies in dist/ (its staging folder is gone)."""
    return replace(output, path=target) if isinstance(output, StagedFile) else output


def _compile_release(
    content_dir: Path,
    previous: Manifest,
    now: int,
    ledger: Ledger | None,
    previous_changelog: str,
    options: Options,
    release: str | None,
    package: bool,
    keep_markdown: bool,
    package_dir: Path,
) -> BuildResult:
    # The rendering and packaging libraries load here, not at import: an up-to-date build never needs them.
    from generator.apkg.notetype import note_types
    from generator.cards.compile import compile_cards

    started = time.perf_counter()
    # The cached cards pass the field gate in the background while this build plans and packages;
    # nothing leaves this function before every verdict is in (`_all_gated`).
    compiled = compile_cards(
        content_dir, jobs=options.jobs, cache=options.cache, progress=options.progress, gate_later=True,
        keep_markdown=keep_markdown,
    )  # fmt: skip
    compiled_at = time.perf_counter()
    if compiled.deckset is None or compiled.errors:
        _all_gated(compiled)
        raise BuildFailed(compiled.diagnostics)
    deckset = compiled.deckset
    types = note_types()
    # The cards live until the build ends: the cycle collector need not walk them again and again (at 50,000
    # cards that was 40 % of the plan), nor touch their pages in the forked packaging workers (copy-on-write).
    gc.freeze()
    try:
        notes = _notes(compiled.cards, types)
        plan = _plan(
            content_dir, deckset, notes, types, previous, now,
            ledger if ledger is not None else seed(previous.cards, previous.removed, previous.version),
            compiled.diagnostics, options, release,
        )  # fmt: skip
        planned_at = time.perf_counter()
        manifest = plan.manifest
        files: dict[str, Output] = {}
        made: dict[str, StagedFile] = {}
        if package:
            files, decks, made = _package_decks(deckset, notes, types, plan, options, package_dir)
            manifest = replace(manifest, decks=decks)
            files.update(_release_files(deckset, manifest, plan, previous_changelog, files, package_dir))
    except BaseException as failure:
        if not isinstance(failure, Exception):
            compiled.cancel_gate()  # interrupted: nothing is published, so no verdict is needed
            raise
        _all_gated(compiled)  # a card the gate refuses explains the failure first, as if it had run before
        raise
    finally:
        gc.unfreeze()
    compiled = _all_gated(compiled)
    if options.cache is not None:
        for key, staged in made.items():  # cached only now: every card in them passed the field gate
            options.cache.put_package(key, staged.path)
    timings = {
        "compile": compiled_at - started,
        "plan": planned_at - compiled_at,
        "package": time.perf_counter() - planned_at,
    }
    return BuildResult(
        manifest, previous, plan.changes, files, compiled.cards, plan.warnings, compiled.cache_hits, timings
    )


def _all_gated(compiled: Compiled) -> Compiled:
    """The compiled cards once the field gate has passed every one; BuildFailed if it refused any."""
    gated = compiled.gated()
    if gated is not compiled and gated.errors:
        raise BuildFailed(gated.diagnostics)
    return gated


def _notes(rendered: tuple[RenderedCard, ...], types: Mapping[CardType, NoteType]) -> list[Note]:
    """Each card as its note: tags under the namespace, the content hash the manifest records."""
    notes = []
    for r in rendered:
        card = r.card
        model_id = types[card.type].model_id
        tags = tuple(sorted(f"{TAG_NAMESPACE}::{tag}" for tag in {*card.tags, card.topic}))
        digest = hashlib.sha256(json.dumps([model_id, r.fields, tags]).encode()).hexdigest()
        notes.append(Note(r, model_id, tags, digest))
    return notes


def _plan(
    content_dir: Path,
    deckset: DeckSet,
    notes: list[Note],
    types: Mapping[CardType, NoteType],
    previous: Manifest,
    now: int,
    ledger: Ledger,
    diagnostics: tuple[Diagnostic, ...],
    options: Options,
    release: str | None,
) -> Plan:
    """The cards and note types against the last manifest and ledger; the draft or release manifest."""
    from generator.apkg.ids import deck_id

    root_prefix = str(deckset.config_path.parent) + os.sep
    states = [
        CardState(
            id=n.card.id,
            previous_ids=n.card.previous_ids,
            path=_relative(n.card.path, root_prefix),
            topic=n.card.topic,
            question=n.rendered.question_text,
            hash=n.hash,
            location=Location(n.card.path, n.card.id_line, 1),
        )
        for n in notes
    ]
    card_records, removed, problems, resolution = plan_cards(states, previous, now, ledger)
    found = [*diagnostics, *problems, *_check_deck_names(deckset, previous, options.allow_rename)]
    if removed and not options.allow_removal:  # with --allow-removal it is deliberate: nothing to warn about
        gone = removal_warnings(removed, Location.run(deckset.config_path.parent))
        if release is None:
            found.extend(gone)
        else:
            found.extend(
                error(w.location, w.message, "publish the removal with 'decks release --allow-removal'") for w in gone
            )
    type_records = tuple(
        plan_notetype(kind, nt.model_id, nt.name, nt.definition_hash(), previous, now) for kind, nt in types.items()
    )
    if any(d.severity == "error" or options.strict for d in found):
        raise BuildFailed(tuple(found))
    warnings = tuple(d for d in found if d.severity == "warning")

    draft_decks = tuple(
        DeckRecord(t.key, deckset.deck_name(t), f"{t.key}.apkg", deck_id(t.key), "", 0, 0,
                   released_name(t.key, previous))
        for t in deckset.topics
    )  # fmt: skip
    manifest = Manifest(previous.version, draft_decks, type_records, card_records, removed)
    changes = unreleased_changes(manifest)
    if release is None:
        section = changes_section(UNRELEASED, manifest, changes) if changes.any else None
        return Plan(manifest, changes, ledger, section, None, frozenset(_topics_with_changes(manifest, changes)),
                    warnings)  # fmt: skip
    if not changes.any:
        raise BuildFailed(
            (
                error(
                    Location.run(content_dir),
                    f"nothing to release: the sources match release {previous.version}",
                    "edit or add cards, run 'decks build', then release",
                ),
            )
        )
    stamp = bump(previous.version, changes, None if release == "auto" else release)
    by_id = {s.id: s for s in states}
    ledger = advance(
        ledger,
        resolution,
        ((by_id[c.id].claim(), c.guid_id, c.note_id, c.released_hash != c.hash) for c in manifest.cards),
        stamp,
    )
    section = changes_section(release_title(stamp, now), manifest, changes)
    # Released, every deck is as users get it: no deck says "plus unreleased changes".
    return Plan(mark_released(manifest, stamp), changes, ledger, section, stamp, frozenset(), warnings)


def _package_decks(
    deckset: DeckSet,
    notes: list[Note],
    types: Mapping[CardType, NoteType],
    plan: Plan,
    options: Options,
    folder: Path,
) -> tuple[dict[str, Output], tuple[DeckRecord, ...], dict[str, StagedFile]]:
    """Every topic's .apkg and all-topics.apkg written into `folder`, the deck records that describe them,
    and the packages made now, by cache key."""
    from generator.apkg.ids import deck_id, note_guid, umbrella_deck_id
    from generator.apkg.package import PackagedDeck, PackagedNote

    manifest = plan.manifest
    records = manifest.card_index()
    type_mods = {t.kind: (types[t.kind], t.mod) for t in manifest.notetypes}  # type: ignore[index]  # a CardType
    by_topic: dict[str, list[Note]] = {t.key: [] for t in deckset.topics}
    for note in notes:
        by_topic[note.card.topic].append(note)
    jobs: list[tuple[str, list[PackagedDeck], list[MediaFile]]] = []
    topic_decks = []
    for topic in deckset.topics:
        topic_notes = by_topic[topic.key]
        label = release_label(manifest.version, topic.key in plan.unreleased_topics)
        deck = PackagedDeck(
            deck_id(topic.key),
            deckset.deck_name(topic),
            _description(topic, deckset, label),
            tuple(
                PackagedNote(
                    guid=note_guid(records[n.card.id].guid_id),
                    kind=n.card.type,
                    fields=n.rendered.fields,
                    tags=n.tags,
                    mod=records[n.card.id].mod,
                    note_id=records[n.card.id].note_id,
                    due=position,
                )
                for position, n in enumerate(topic_notes)
            ),
        )
        topic_decks.append(deck)
        jobs.append((f"{topic.key}.apkg", [deck], [m for n in topic_notes for m in n.rendered.media]))
    umbrella = PackagedDeck(umbrella_deck_id(deckset.name), deckset.name, _umbrella_description(deckset), ())
    all_media = [m for n in notes for m in n.rendered.media]
    # The largest first: with two workers, all-topics.apkg on one and the topics on the other end together.
    jobs.insert(0, (ALL_TOPICS_FILE, [umbrella, *topic_decks], all_media))
    packages, made = _package_all(jobs, type_mods, options, folder)
    files: dict[str, Output] = {name: packages[name] for name, _decks, _media in jobs[1:]}  # topics in deck order
    files[ALL_TOPICS_FILE] = packages[ALL_TOPICS_FILE]
    decks = list(manifest.decks)
    for index, topic in enumerate(deckset.topics):
        decks[index] = replace(
            decks[index],
            sha256=packages[f"{topic.key}.apkg"].sha256,
            notes=len(by_topic[topic.key]),
            cards=sum(n.rendered.card_count for n in by_topic[topic.key]),
        )
    return files, tuple(decks), made


def _release_files(
    deckset: DeckSet,
    manifest: Manifest,
    plan: Plan,
    previous_changelog: str,
    packages: Mapping[str, Output],
    folder: Path,
) -> dict[str, Output]:
    """The files beside the packages: the learners' README, checksums, changelog, manifest and ledger.

    The manifest (a line per card) is written into `folder` beside the packages, a line at a time.
    """
    readme = dist_readme(deckset, manifest).encode()
    files = {**packages, README_FILE: readme}
    checksums = "".join(f"{digest(data)}  {name}\n" for name, data in sorted(files.items()))
    try:
        written = _write_lines(folder / MANIFEST_FILE, manifest_pieces(manifest))
    except OSError as failure:
        raise BuildFailed((_scratch_error(folder, failure, "the manifest"),)) from None
    return {
        README_FILE: readme,
        CHECKSUMS_FILE: checksums.encode(),
        CHANGELOG_FILE: updated_changelog(previous_changelog, plan.changelog_section, stamp=plan.stamp).encode(),
        MANIFEST_FILE: written,
        LEDGER_FILE: ledger_json(plan.ledger).encode(),
    }


def _write_lines(path: Path, pieces: Iterable[str]) -> StagedFile:
    """Write UTF-8 text piece by piece, hashing it on the way."""
    sha256, size = hashlib.sha256(), 0
    with open(path, "wb") as handle:
        for piece in pieces:
            data = piece.encode()
            sha256.update(data)
            handle.write(data)
            size += len(data)
    return StagedFile(path, sha256.hexdigest(), size)


def _scratch_error(folder: Path, failure: Exception, what: str) -> Diagnostic:
    """A file of the build could not be written into its scratch folder: the disk, not the cards."""
    reason = str(failure)
    if isinstance(failure, OSError) and failure.strerror:
        reason = f"{failure.strerror}: {failure.filename}" if failure.filename else failure.strerror
    return error(
        Location.run(folder), f"cannot write {what}: {reason}",
        "check the free space and permissions of the temporary folder (TMPDIR)",
    )  # fmt: skip


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
    del tree  # a status per source file: the rest of the build does not need them
    previous = _previous_manifest(dist_dir)
    try:
        # The packages go from the workers to disk and from there into dist/, never through this process's memory.
        with tempfile.TemporaryDirectory(prefix="decks-packages-") as packages:
            result = compile_release(
                content_dir, previous, now, ledger=_ledger(dist_dir),
                previous_changelog=_read_text(dist_dir / CHANGELOG_FILE), options=options, release=release,
                keep_markdown=False,  # publishing needs the fields, not the Markdown they came from
                package_dir=Path(packages),
            )  # fmt: skip
            owned = {d.file for d in previous.decks} | set(RELEASE_FILES)
            try:
                publish(dist_dir, result.files, owned, last=MANIFEST_FILE)
            except PublishError as failure:
                raise BuildFailed(
                    (error(Location.run(dist_dir), str(failure), "check free space and permissions"),)
                ) from None
        result = replace(result, files={name: _published(data, dist_dir / name) for name, data in result.files.items()})
        if stamp_name is not None and fingerprint is not None and options.cache is not None:
            options.cache.save_stamp(stamp_name, _stamp(fingerprint, racy_after, result))
    finally:
        if options.cache is not None:
            options.cache.flush()  # packages and the stamp, in one transaction
    if options.cache is not None:
        options.cache.prune()  # this build read every card and made every package: the rest is stale
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
        "dist": {name: digest(data) for name, data in result.files.items()},
        # What the summary line needs, so an up-to-date build does not read a 10,000-card manifest to print it.
        "version": result.manifest.version,
        "decks": [astuple(deck) for deck in result.manifest.decks],
        "changes": asdict(result.changes),
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
        manifest = Manifest(stamp["version"], tuple(DeckRecord(*deck) for deck in stamp["decks"]), (), ())
        changes = Changes(**{name: tuple(ids) for name, ids in stamp["changes"].items()})
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    if options.strict and warnings:
        raise BuildFailed(warnings)
    notes = sum(d.notes for d in manifest.decks)
    return BuildResult(manifest, manifest, changes, {}, (), warnings, notes, up_to_date=True)


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
        elif not same_content(target, data):
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


PARALLEL_PACKAGE_NOTES = 2_000  # below this many notes to package, starting workers costs more than it saves
PackageJob = tuple[str, list["PackagedDeck"], list["MediaFile"]]  # file name, its decks, their images
_PACKAGING: list[tuple[Path, list[PackagedDeck], dict[str, tuple[NoteType, int]], list[MediaFile]]] = []


def _package_all(
    jobs: list[PackageJob], type_mods: dict[str, tuple[NoteType, int]], options: Options, folder: Path
) -> tuple[dict[str, StagedFile], dict[str, StagedFile]]:
    """Write each job's package into `folder`, or the package made last time from exactly the same inputs.

    Returns the packages by file name, and those made now by cache key (to store once every card passed).
    """
    import sqlite3

    from generator.apkg.package import write_package

    cache = options.cache
    done: dict[str, StagedFile] = {}
    keys: dict[str, str] = {}
    todo: list[PackageJob] = []
    try:
        for name, decks, media in jobs:
            if cache is not None:
                keys[name] = _package_key(decks, type_mods, media)
                sha256 = cache.get_package(keys[name], folder / name)
                if sha256 is not None:
                    done[name] = StagedFile.written(folder / name, sha256)
                    continue
            todo.append((name, decks, media))
        notes = sum(len(deck.notes) for _name, decks, _media in todo for deck in decks)
        if options.jobs > 1 and len(todo) > 1 and notes >= PARALLEL_PACKAGE_NOTES and _fork_context() is not None:
            digests = _package_in_parallel(todo, type_mods, options.jobs, folder)
        else:
            digests = [write_package(folder / name, decks, type_mods, media) for name, decks, media in todo]
        made = {name: StagedFile.written(folder / name, sha) for (name, _, _), sha in zip(todo, digests, strict=True)}
    except (OSError, sqlite3.Error) as failure:  # the scratch folder is full or unwritable (the disk, not the cards)
        raise BuildFailed((_scratch_error(folder, failure, "the packages"),)) from None
    done.update(made)
    return done, {keys[name]: staged for name, staged in made.items() if name in keys}


def _package_in_parallel(
    todo: list[PackageJob], type_mods: dict[str, tuple[NoteType, int]], jobs: int, folder: Path
) -> list[str]:
    """Package on `jobs` processes, the jobs in the order given (the largest first keeps both cores busy to the end).

    Each worker writes its package into `folder` and sends back only its SHA-256.
    """
    from concurrent.futures import ProcessPoolExecutor

    from generator.cards.compile import _die_with_parent

    global _PACKAGING
    # Forked workers inherit the decks from this list: nothing large is pickled to them, or back.
    _PACKAGING = [(folder / name, decks, type_mods, media) for name, decks, media in todo]
    try:
        with ProcessPoolExecutor(
            max_workers=min(jobs, len(todo)), mp_context=_fork_context(), initializer=_die_with_parent
        ) as pool:
            return list(pool.map(_package_job, range(len(todo))))
    finally:
        _PACKAGING = []


def _package_job(index: int) -> str:
    from generator.apkg.package import write_package

    return write_package(*_PACKAGING[index])


def _fork_context() -> BaseContext | None:
    from multiprocessing import get_all_start_methods, get_context

    return get_context("fork") if "fork" in get_all_start_methods() else None


def _package_key(decks: list[PackagedDeck], type_mods: dict[str, tuple[NoteType, int]], media: list[MediaFile]) -> str:
    """Hash of everything a package is made from."""
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
    return digest.hexdigest()


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
    from generator.cards.load import deck_name_key

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
