"""One card compiled: the budget, and the last gate every field passes, cached or fresh."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from generator import cache as cache_module
from generator.cache import RenderCache
from generator.cards import compile as compile_module
from generator.cards.compile import compile_card, field_gate
from generator.cards.load import SourceFile

PATH = Path("/cards/alpha/card.md")
CLOZE_CARD = (
    "---\nid: alpha-card\ntags: []\nsource: [alpha]\ntype: cloze\n---\n"
    "# Adam keeps\n\n{{c1::two}} moments per {{c2::weight}}.\n"
)


def test_a_cloze_note_makes_one_card_per_deletion_number() -> None:
    rendered, diagnostics = compile_card(SourceFile(PATH, "alpha", CLOZE_CARD))
    assert rendered is not None, diagnostics
    assert rendered.card_count == 2
    assert field_gate(rendered) == []


def test_the_gate_refuses_a_field_anki_would_read_other_deletions_from() -> None:
    rendered, _ = compile_card(SourceFile(PATH, "alpha", CLOZE_CARD))
    assert rendered is not None
    # As a buggy renderer (or a planted cache entry) might leave it: c2's marker gone from the field.
    broken = dataclasses.replace(
        rendered, fields=(rendered.fields[0].replace("{{c2::weight}}", "weight"), *rendered.fields[1:])
    )
    [problem] = field_gate(broken)
    assert problem.format() == (
        "/cards/alpha/card.md:7:1: error: the rendered field makes the cloze cards [1], the card's text [1, 2]\n"
        "  hint: keep each deletion in plain text: outside code, links and HTML"
    )


def _basic_card(number: int, answer: str) -> SourceFile:
    text = f"---\nid: alpha-{number}\ntags: []\nsource: [alpha]\n---\n# Question {number}?\n\n{answer}\n"
    return SourceFile(PATH.with_name(f"card-{number}.md"), "alpha", text)


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no CPU timer on this system")
def test_render_workers_keep_the_budget_for_every_card_they_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    # The workers install the timer's handler once: a slow card after others in the same worker still stops.
    monkeypatch.setattr(compile_module, "CARD_CPU_SECONDS", 0.5)
    monkeypatch.setattr(compile_module, "PARALLEL_THRESHOLD", 2)
    sources = [_basic_card(n, "Plain words.") for n in range(6)] + [_basic_card(6, "[" * 30_000)]
    results = list(compile_module._compile_all(sources, jobs=2, expected=len(sources), encode=False))
    *fine, (slow, _gate, _entry) = results
    assert all(rendered is not None and not diagnostics for (rendered, diagnostics), _, _ in fine)
    assert slow[0] is None
    assert [d.message for d in slow[1]] == ["card took more than 0.5 s of CPU time to compile (the per-card limit)"]


def test_outside_the_workers_the_budget_gives_the_signal_back() -> None:
    before = signal.getsignal(signal.SIGVTALRM) if hasattr(signal, "SIGVTALRM") else None
    rendered, _ = compile_card(_basic_card(1, "Plain words."))
    assert rendered is not None
    if hasattr(signal, "SIGVTALRM"):
        assert signal.getsignal(signal.SIGVTALRM) == before


def test_card_files_are_read_as_the_pool_takes_them_and_bad_ones_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small batches and a low threshold: the first cards compile on the pool while later files are read.
    monkeypatch.setattr(compile_module, "PARALLEL_THRESHOLD", 2)
    monkeypatch.setattr(compile_module, "LOOKUP_BATCH", 3)
    (tmp_path / "deckset.yaml").write_text("name: Test Decks\n")
    topic = tmp_path / "alpha"
    topic.mkdir()
    (topic / "topic.yaml").write_text("name: Alpha\ndescription: d\norder: 1\n")
    for number in range(10):
        source = _basic_card(number, "Plain words.")
        (topic / f"card-{number}.md").write_text(source.text or "")
    (topic / "card-5.md").write_bytes(b"---\nid: alpha-5\n\xff\n")
    compiled = compile_module.compile_cards(tmp_path, jobs=2)
    assert [r.card.id for r in compiled.cards] == [f"alpha-{n}" for n in range(10) if n != 5]
    assert [d.format().splitlines()[0] for d in compiled.errors] == [
        f"{topic / 'card-5.md'}:3:1: error: not valid UTF-8 (invalid start byte)"
    ]


def _many_cards(root: Path, count: int) -> Path:
    topic = root / "alpha"
    topic.mkdir(parents=True)
    (root / "deckset.yaml").write_text("name: Test Decks\n")
    (topic / "topic.yaml").write_text("name: Alpha\ndescription: d\norder: 1\n")
    for number in range(count):
        (topic / f"card-{number}.md").write_text(_basic_card(number, "Plain words.").text or "")
    return topic


def _pools_started(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the render pools started (not the field gate's, which gates the cached cards)."""
    started: list[int] = []

    class CountedPool(compile_module.ProcessPoolExecutor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if kwargs.get("initializer") is compile_module._start_render_worker:
                started.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(compile_module, "ProcessPoolExecutor", CountedPool)
    return started


def test_the_pool_starts_for_the_cards_that_compile_not_for_the_files_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the index of unchanged files (as on Windows, or after a checkout touched them all), every
    # file is read; the cache still holds all but the edited one, which compiles in this process.
    monkeypatch.setattr(cache_module, "FILE_INDEX", False)
    monkeypatch.setattr(compile_module, "RACY_MARGIN_NS", 0)
    topic = _many_cards(tmp_path / "content", 100)
    cache = RenderCache(tmp_path / "cache")
    assert compile_module.compile_cards(tmp_path / "content", jobs=2, cache=cache).cache_hits == 0
    (topic / "card-7.md").write_text(_basic_card(7, "Edited words.").text or "")
    started = _pools_started(monkeypatch)
    compiled = compile_module.compile_cards(tmp_path / "content", jobs=2, cache=RenderCache(tmp_path / "cache"))
    assert (compiled.cache_hits, len(compiled.cards), started) == (99, 100, [])


def test_the_pool_starts_when_recorded_files_have_lost_their_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The index says every file is unchanged, but the entries are gone (pruned by another content folder,
    # say): all of them compile, on the pool.
    monkeypatch.setattr(compile_module, "RACY_MARGIN_NS", 0)
    _many_cards(tmp_path / "content", 100)
    cache = RenderCache(tmp_path / "cache")
    compile_module.compile_cards(tmp_path / "content", jobs=2, cache=cache)
    cache.close()
    with contextlib.closing(sqlite3.connect(cache.database)) as database, database:
        database.execute("DELETE FROM blobs WHERE kind = ?", (cache_module.CARDS,))
    started = _pools_started(monkeypatch)
    compiled = compile_module.compile_cards(tmp_path / "content", jobs=2, cache=RenderCache(tmp_path / "cache"))
    assert (compiled.cache_hits, len(compiled.cards), started) == (0, 100, [1])
