"""Compile the cards: load → parse → validate → render → reader checks, for every card.

Each card is compiled by `compile_card`, a pure function of its source file (and
the images it names), so its result can be cached and computed in parallel.
What spans cards (unique ids, repeated questions) is checked afterwards.
Nothing here knows about releases, the manifest or `dist/`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import gc
import itertools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_all_start_methods, get_context
from multiprocessing.connection import Connection
from pathlib import Path

from generator.cache import RACY_MARGIN_NS, RenderCache, encode_entry
from generator.cards.checks import reader_checks
from generator.cards.cloze import read_clozes
from generator.cards.load import SourceFile, load_content
from generator.cards.model import Card, DeckSet, RenderedCard
from generator.cards.parse import parse_card_file
from generator.cards.render import render_card, reset_markdown
from generator.cards.sanitize import field_problems
from generator.cards.tex import TEX_HINT
from generator.cards.validate import validate_file
from generator.diagnostics import Diagnostic, Location, error, warning

GATE_HINT = f"{TEX_HINT}; a formula made with HTML entities or Markdown escapes is checked as MathJax will read it"
HTML_GATE_HINT = "see 'HTML in cards' in content/README.md; keep cloze deletions in text, outside tags"

PR_SET_PDEATHSIG = 1  # Linux prctl option: a signal for this process when its parent dies
CARD_CPU_SECONDS = 5  # a real card compiles in milliseconds; quadratic Markdown would take minutes
PARALLEL_THRESHOLD = 64  # below this many cards to render, a process pool costs more than it saves
LOOKUP_BATCH = 256  # card files read and looked up in the cache at a time, before their misses go to compile
Progress = Callable[[int, int], None]  # called with (cards done, cards in all)


@dataclass(frozen=True, slots=True)
class Compiled:
    """Every card of the content folder, rendered, with all diagnostics of the run.

    The source files are not kept: once compiled, their text is not needed (and would double the memory).
    """

    deckset: DeckSet | None
    cards: tuple[RenderedCard, ...]
    diagnostics: tuple[Diagnostic, ...]
    cache_hits: int = 0
    # With `gate_later`: the field gate of the cached cards, still running. Until `gated()` is called,
    # `cards` and `diagnostics` are what they will be if every cached card passes it.
    pending: _GateInBackground | None = None

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "error")

    def gated(self) -> Compiled:
        """These cards once the field gate has judged every one of them (waiting for it if it still runs)."""
        if self.pending is None:
            return self
        verdicts = self.pending.verdicts()
        if not any(verdicts):
            return replace(self, pending=None)
        assert self.deckset is not None  # a gate runs only when the content was read
        return _assemble(self.deckset, self.pending.in_order, iter(verdicts), self.cache_hits)

    def cancel_gate(self) -> None:
        """Stop a gate still running (the build was interrupted: its verdicts will not be asked for)."""
        if self.pending is not None:
            self.pending.cancel()


def compile_card(source: SourceFile) -> tuple[RenderedCard | None, tuple[Diagnostic, ...]]:
    """Parse, validate, render and check one card file, within the time budget."""
    try:
        with cpu_budget(CARD_CPU_SECONDS):
            return _compile_card(source)
    except CardTimeout:
        reset_markdown()  # the converter was stopped mid-card: its state is unknown
        return None, (
            error(
                Location(source.path, 1, 1),
                f"card took more than {CARD_CPU_SECONDS} s of CPU time to compile (the per-card limit)",
                "Markdown slows down on long runs of unclosed '[' or deeply nested quotes and lists: "
                "split the card or close the brackets",
            ),
        )


class CardTimeout(Exception):
    """A card used up its CPU budget."""


_OWNS_CPU_TIMER = False  # True in a render worker, which keeps the timer's handler for its whole life


def _expire(_signum: int, _frame: object) -> None:
    raise CardTimeout


@contextlib.contextmanager
def cpu_budget(seconds: float) -> Iterator[None]:
    """Raise `CardTimeout` once this process has spent `seconds` of CPU time inside the block.

    CPU time, not wall time, so a busy machine does not fail a card. Where the
    timer is missing (Windows) or this is not the main thread, cards run unbounded.
    Elsewhere than in a render worker, the previous handler of the signal is restored afterwards.
    """
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = None if _OWNS_CPU_TIMER else signal.signal(signal.SIGVTALRM, _expire)
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        if not _OWNS_CPU_TIMER:
            signal.signal(signal.SIGVTALRM, previous)


def _start_render_worker() -> None:
    """Set up a process of the render pool: it dies with the build and owns the CPU timer's handler.

    Installing the handler once instead of around every card saves two handler swaps per card (each
    converts handlers to and from enums: about 1 % of a cold build's CPU).
    """
    global _OWNS_CPU_TIMER
    _die_with_parent()
    if hasattr(signal, "setitimer"):
        signal.signal(signal.SIGVTALRM, _expire)
        _OWNS_CPU_TIMER = True


def _compile_card(source: SourceFile) -> tuple[RenderedCard | None, tuple[Diagnostic, ...]]:
    read, reading = source.read()
    if read is None or read.text is None:
        return None, tuple(reading)
    parsed, diagnostics = parse_card_file(read.path, read.text)
    if parsed is None:
        return None, tuple(diagnostics)
    card, problems = validate_file(parsed, source.topic)
    diagnostics.extend(problems)
    if card is None:
        return None, tuple(diagnostics)
    diagnostics.extend(reader_checks(card))
    if not card.sources:
        diagnostics.append(
            warning(
                Location(card.path, card.id_line, 1),
                "card has no 'source'",
                f"name the seed items it answers (e.g. source: [001_109fc0eff3c94634.txt#26]) or its topic "
                f"(source: [{card.topic}])",
            )
        )
    rendered, problems = render_card(card)
    diagnostics.extend(problems)
    return rendered, tuple(diagnostics)


def compile_cards(
    content_dir: Path,
    *,
    jobs: int = 1,
    cache: RenderCache | None = None,
    progress: Progress | None = None,
    gate_later: bool = False,
    keep_markdown: bool = True,
) -> Compiled:
    """Compile every card under `content_dir`; cached cards are reused, the rest rendered on `jobs` processes.

    Every card passes the field gate. Fresh cards pass it in their worker; with `gate_later`, the cached
    ones pass it in a background process while the caller goes on, and `Compiled.gated()` waits for it.
    Without `keep_markdown`, the cards come without their Markdown (`Card.without_markdown`), as a build
    that only packages them needs them (at 10,000 cards: 11 MB less to hold, and to send from the workers).
    """
    # Card files the cache recorded and that have not changed since are not even read; the others are read
    # while the first ones compile.
    recent_after = time.time_ns() - RACY_MARGIN_NS
    known = cache.known_sources(content_dir.resolve()) if cache is not None else None
    content, loading = load_content(content_dir, known, recent_after_ns=recent_after, read_cards=False)
    if content is None:
        return Compiled(None, (), tuple(loading))
    results: dict[Path, tuple[Result, list[Diagnostic] | None]] = {}  # with the field gate's verdict, if known
    misses: list[SourceFile] = []  # in the order they are compiled
    cached_sources: list[SourceFile] = []  # what the cache now holds an entry for

    def read_now(source: SourceFile) -> SourceFile | None:
        done, problems = source.read()
        loading.extend(problems)
        if done is None:
            results[source.path] = ((None, ()), [])
        return done

    def to_compile() -> Iterator[SourceFile]:
        """The card files the cache does not hold, read batch by batch as the compiler asks for them."""
        for start in range(0, len(content.files), LOOKUP_BATCH):
            listed = content.files[start : start + LOOKUP_BATCH]
            batch = []
            for source in listed:
                ready = source if source.known_key is not None else read_now(source)  # a recorded file stays unread
                if ready is not None:
                    batch.append(ready)
            cached = cache.get_many(batch, keep_markdown=keep_markdown) if cache is not None else [None] * len(batch)
            for source, hit in zip(batch, cached, strict=True):
                looked_up[0] += 1
                if hit is not None:
                    results[source.path] = (hit, None)
                    cached_sources.append(keyed(source))
                elif (fresh := read_now(source)) is not None:  # recorded unread, but its entry is gone: read it now
                    misses.append(keyed(fresh))
                    yield fresh

    def keyed(source: SourceFile) -> SourceFile:
        """The file without its text, by its cache key: its text goes once it has compiled (less to hold)."""
        return replace(source, text=None, known_key=cache.key(source)) if cache is not None else source

    total = len(content.files)
    looked_up = [0]  # card files `to_compile` has looked up so far
    misses_to_come = to_compile()
    # Whether to start the pool depends on how many cards will compile: look until there are enough to tell.
    head = list(itertools.islice(misses_to_come, PARALLEL_THRESHOLD))
    sources: Iterable[SourceFile]
    if jobs <= 1 or len(head) < PARALLEL_THRESHOLD:
        sources = [*head, *misses_to_come]  # one process: read them all first, there is nothing to overlap with
        expected = len(sources)
    else:
        sources = itertools.chain(head, misses_to_come)
        expected = len(head) * total // looked_up[0]  # as many as the misses so far foretell
    compiling = _compile_all(sources, jobs, expected, encode=cache is not None, keep_markdown=keep_markdown)
    for index, (result, gate, entry) in enumerate(compiling):
        source = misses[index]  # taken from `to_compile` before its result came back
        results[source.path] = (result, gate)
        if cache is not None and entry is not None and not gate:
            cache.put_encoded(source, entry)
            cached_sources.append(source)
        if progress is not None:
            progress(len(results), total)
    if cache is not None:
        cache.remember_sources(content_dir.resolve(), cached_sources)
        cache.flush()  # every new entry in one transaction
    if progress is not None:
        progress(total, total)
    # Every fresh card was gated in its worker; a cached one is gated here, or in the background: each field,
    # every build.
    in_order = _InOrder(loading, [results[source.path] for source in content.files])
    ungated = [card for (card, _), verdict in in_order.results if card is not None and verdict is None]
    hits = len(ungated)  # every card from the cache, and only those, waits for the gate here
    if gate_later and ungated and "fork" in get_all_start_methods():
        with contextlib.suppress(OSError):  # no process to be had: the gate runs here, below
            pending = _GateInBackground(ungated, in_order)
            return replace(_assemble(content.deckset, in_order, itertools.repeat([]), hits), pending=pending)
    return _assemble(content.deckset, in_order, iter(_gate_all(ungated, jobs)), hits)


@dataclass(frozen=True, slots=True)
class _InOrder:
    """What compiling found, in the content's order: loading problems, then each card with its gate verdict."""

    loading: list[Diagnostic]
    results: list[tuple[Result, list[Diagnostic] | None]]  # verdict None: a cached card, not gated yet


def _assemble(deckset: DeckSet, in_order: _InOrder, late_verdicts: Iterator[list[Diagnostic]], hits: int) -> Compiled:
    """The compiled cards and every diagnostic, given the verdicts of the cards not gated yet (in order)."""
    diagnostics = list(in_order.loading)
    rendered: list[RenderedCard] = []
    for (card, problems), verdict in in_order.results:
        diagnostics.extend(problems)
        if card is not None:
            gated = verdict if verdict is not None else next(late_verdicts)
            diagnostics.extend(gated)
            if not gated:
                rendered.append(card)
    diagnostics.extend(check_unique_ids(r.card for r in rendered))
    diagnostics.extend(_check_duplicate_questions(rendered))
    return Compiled(deckset, tuple(rendered), tuple(diagnostics), hits)


def field_gate(rendered: RenderedCard) -> list[Diagnostic]:
    """The last check before a note leaves the build, on fresh and cached cards alike."""
    card = rendered.card
    problems = []
    for field, line in zip(rendered.fields, (card.front_line, card.back_line, card.id_line), strict=True):
        for message in field_problems(field):
            hint = GATE_HINT if message.startswith("TeX") else HTML_GATE_HINT
            problems.append(error(Location(card.path, line, 1), f"{message} (in the rendered field)", hint))
    if card.type == "cloze":
        anki_reads = read_clozes(rendered.fields[0])
        if anki_reads.problem is not None or anki_reads.ordinals != card.clozes.ordinals:
            problems.append(
                error(
                    Location(card.path, card.front_line, 1),
                    f"the rendered field makes the cloze cards {list(anki_reads.ordinals)}, "
                    f"the card's text {list(card.clozes.ordinals)}",
                    "keep each deletion in plain text: outside code, links and HTML",
                )
            )
    return problems


Result = tuple[RenderedCard | None, tuple[Diagnostic, ...]]
_GATING: list[RenderedCard] = []  # what forked gate workers inherit, so no card is pickled to them


def _gate_all(cards: list[RenderedCard], jobs: int) -> list[list[Diagnostic]]:
    """`field_gate` of each card, on `jobs` processes when there are many."""
    global _GATING
    if jobs <= 1 or len(cards) < PARALLEL_THRESHOLD or "fork" not in get_all_start_methods():
        return [field_gate(card) for card in cards]
    _GATING = cards
    try:
        chunk = max(64, len(cards) // (jobs * 4))
        with ProcessPoolExecutor(
            max_workers=jobs, mp_context=get_context("fork"), initializer=_die_with_parent
        ) as pool:
            return list(pool.map(_gate_job, range(len(cards)), chunksize=chunk))
    finally:
        _GATING = []


def _gate_job(index: int) -> list[Diagnostic]:
    return field_gate(_GATING[index])


class _GateInBackground:
    """`field_gate` of many cards in one forked child, so the build can plan and package meanwhile.

    A plain child and a pipe, no pool: the parent keeps no helper thread that a later fork
    (the packaging pool) could copy mid-lock. It sends back only the verdicts that found problems.
    """

    def __init__(self, cards: list[RenderedCard], in_order: _InOrder) -> None:
        global _GATING
        self.cards = cards
        self.in_order = in_order
        context = get_context("fork")
        self._reader, writer = context.Pipe(duplex=False)
        _GATING = cards
        try:
            self._process = context.Process(target=_gate_in_child, args=(writer,), daemon=True)
            self._process.start()
        except BaseException:
            self._reader.close()
            raise
        finally:
            _GATING = []
            writer.close()
        self._verdicts: list[list[Diagnostic]] | None = None

    def verdicts(self) -> list[list[Diagnostic]]:
        """Each card's verdict, in order; computed here if the child could not deliver them."""
        if self._verdicts is None:
            try:
                found: dict[int, list[Diagnostic]] = self._reader.recv()
                verdicts = [found.get(index, []) for index in range(len(self.cards))]
            except (EOFError, OSError):
                verdicts = [field_gate(card) for card in self.cards]  # the child died: judge them here
            self._reader.close()
            self._process.join()
            self._verdicts = verdicts
        return self._verdicts

    def cancel(self) -> None:
        """Stop the child without waiting for its verdicts."""
        if self._verdicts is None and not self._reader.closed:
            self._process.terminate()
            self._process.join()
            self._reader.close()


def _gate_in_child(writer: Connection) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops this child
    gc.freeze()  # the parent's objects stay shared pages: this child only reads the cards
    found = {index: problems for index, card in enumerate(_GATING) if (problems := field_gate(card))}
    writer.send(found)
    writer.close()


def _compile_all(
    sources: Iterable[SourceFile], jobs: int, expected: int, *, encode: bool, keep_markdown: bool = True
) -> Iterable[tuple[Result, list[Diagnostic], bytes | None]]:
    """Each source compiled, in order; on `jobs` processes when about `expected` of them will come.

    The pool takes `sources` as it submits them, so the first cards compile while the rest are read.
    """
    work = functools.partial(_compile_and_encode, encode, keep_markdown)
    if jobs <= 1 or expected < PARALLEL_THRESHOLD:
        yield from map(work, sources)
        return
    # fork: the workers inherit the imported pipeline instead of importing it again.
    context = get_context("fork") if "fork" in get_all_start_methods() else get_context()
    chunk = max(8, min(64, expected // (jobs * 8)))
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_start_render_worker) as pool:
        yield from pool.map(work, sources, chunksize=chunk)


def _compile_and_encode(
    encode: bool, keep_markdown: bool, source: SourceFile
) -> tuple[Result, list[Diagnostic], bytes | None]:
    """Compile a card, run the field gate and make its cache entry, all in the worker: in parallel."""
    rendered, diagnostics = compile_card(source)
    gate = field_gate(rendered) if rendered is not None else []
    entry = encode_entry(rendered, diagnostics) if encode else None
    if rendered is not None:
        # The segments served this card's stages; sent back, they would cost as much again to pickle.
        card = rendered.card
        slim = replace(card, front_segments=None, back_segments=None) if keep_markdown else card.without_markdown()
        rendered = replace(rendered, card=slim)
    return (rendered, diagnostics), gate, entry


def _die_with_parent() -> None:
    """A worker must not outlive a build that was killed (it would wait on its queue forever)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the build died before the line above ran
            os._exit(1)


def check_unique_ids(cards: Iterable[Card]) -> list[Diagnostic]:
    """Report every card whose id, or one of its previous ids, another card already uses."""
    first_use: dict[str, Card] = {}
    problems = []
    for card in cards:
        for card_id in (card.id, *card.previous_ids):
            other = first_use.get(card_id)
            if other is not None:
                problems.append(
                    error(
                        Location(card.path, card.id_line, 1),
                        f"id '{card_id}' is also used by {other.path}",
                        "every card needs its own id (and a previous id belongs to one card only)",
                    )
                )
            else:
                first_use[card_id] = card
    return problems


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
