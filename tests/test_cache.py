"""A cached build is never stale: after each kind of change it is byte-identical to a cold build."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from generator import build as build_module
from generator import cache as cache_module
from generator.build import Options, build, check
from generator.cache import RenderCache
from generator.cards import compile as compile_module
from generator.cards import load as load_module
from generator.cards.compile import PARALLEL_THRESHOLD, compile_cards
from generator.cards.model import RenderedCard
from generator.diagnostics import BuildFailed, Diagnostic, Location, error
from tests.conftest import T0, WriteCard
from tests.test_images import ONE_PIXEL_PNG

Change = Callable[[Path], None]


def settle(content: Path) -> None:
    """Date every source a minute back: files modified moments ago never count as unchanged."""
    past = time.time() - 60
    for path in content.rglob("*"):
        os.utime(path, (past, past))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def twin(content: Path, sample_cards: None, tmp_path: Path) -> Iterator[Callable[..., None]]:
    """Build the content twice from the same dist/: cold, and through a warm cache; compare."""
    (content / "alpha" / "pic.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><rect width="1"/></svg>')
    (content / "alpha" / "picture.md").write_text(
        "---\nid: alpha-picture\ntags: [x]\nsource: [alpha]\n---\n# A picture?\n\n![p](pic.svg)\n"
    )
    cache = RenderCache(tmp_path / "cache")
    base = tmp_path / "base"
    build(content, base, T0, options=Options(cache=cache))  # warms the cache
    step = [0]

    def compare(change: Change, **options: bool) -> None:
        step[0] += 1
        change(content)
        cold, warm = tmp_path / f"cold{step[0]}", tmp_path / f"warm{step[0]}"
        shutil.copytree(base, cold)
        shutil.copytree(base, warm)
        now = T0 + 100 * step[0]
        cold_result = build(content, cold, now, options=Options(**options))
        warm_result = build(content, warm, now, options=Options(cache=cache, **options))
        assert snapshot(warm) == snapshot(cold)
        assert warm_result.warnings == cold_result.warnings
        # And once more from the cache alone: still the same bytes.
        again = tmp_path / f"again{step[0]}"
        shutil.copytree(base, again)
        assert build(content, again, now, options=Options(cache=cache, **options)).cache_hits == len(cold_result.cards)
        assert snapshot(again) == snapshot(cold)

    yield compare


def edit_card(content: Path) -> None:
    path = content / "alpha" / "sigmoid.md"
    path.write_text(path.read_text().replace("emphasis", "stress"))


def delete_card(content: Path) -> None:
    (content / "beta" / "reversed.md").unlink()


def rename_topic(content: Path) -> None:
    (content / "beta" / "topic.yaml").write_text("name: Renamed Topic\ndescription: About beta.\norder: 1\n")


def replace_image(content: Path) -> None:
    (content / "alpha" / "pic.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><circle r="2"/></svg>')


def corrupt_cache(_content: Path) -> None:
    folder = Path(_content).parent / "cache"
    files = [entry for entry in folder.rglob("*") if entry.is_file()]
    assert files
    for entry in files:
        entry.write_bytes(entry.read_bytes()[: len(entry.read_bytes()) // 2])


@pytest.mark.parametrize(
    ("change", "options"),
    [
        (edit_card, {}),
        (delete_card, {}),
        (rename_topic, {"allow_rename": True}),
        (replace_image, {}),
        (corrupt_cache, {}),
    ],
    ids=["card-edit", "deleted-card", "topic-rename", "changed-image", "corrupted-cache"],
)
def test_cached_build_equals_cold_build(twin: Callable[..., None], change: Change, options: dict[str, bool]) -> None:
    twin(change, **options)


def test_a_css_change_repackages(twin: Callable[..., None], monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from generator.apkg import notetype

    original = notetype.note_types

    def restyled() -> dict[str, notetype.NoteType]:
        return {kind: replace(nt, css=nt.css + "\n.card { color: teal; }\n") for kind, nt in original().items()}

    monkeypatch.setattr(notetype, "note_types", restyled)
    twin(lambda _content: None)


def test_a_new_library_version_invalidates_the_cache(
    twin: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = cache_module.environment_key()
    real_version = cache_module.metadata.version
    monkeypatch.setattr(
        cache_module.metadata, "version", lambda name: "99.0" if name == "markdown" else real_version(name)
    )
    cache_module.environment_key.cache_clear()
    try:
        assert cache_module.environment_key() != before
        twin(edit_card)
    finally:
        cache_module.environment_key.cache_clear()


def test_a_card_with_an_error_is_never_served_from_the_cache(content: Path, sample_cards: None, tmp_path: Path) -> None:
    card = content / "alpha" / "broken.md"
    card.write_text("---\nid: alpha-broken\ntags: [x]\nsource: [alpha]\n---\n# Q?\n\n![p](later.png)\n")
    cache = RenderCache(tmp_path / "cache")
    with pytest.raises(Exception, match="not found"):
        build(content, tmp_path / "dist", T0, options=Options(cache=cache))
    (content / "alpha" / "later.png").write_bytes(ONE_PIXEL_PNG)
    result = build(content, tmp_path / "dist", T0, options=Options(cache=cache))
    assert any(m.name.startswith("later-") for r in result.cards for m in r.media)


def test_an_unchanged_build_is_recognised_and_any_change_defeats_it(
    content: Path, sample_cards: None, tmp_path: Path
) -> None:
    cache = RenderCache(tmp_path / "cache")
    dist = tmp_path / "dist"
    options = Options(cache=cache)
    first = build(content, dist, T0, options=options)
    assert not first.up_to_date
    files = snapshot(dist)
    again = build(content, dist, T0 + 5, options=options)
    assert again.up_to_date
    assert snapshot(dist) == files
    # Reported from the signed stamp, without reading the manifest: the same summary as the build that wrote it.
    assert (again.manifest.version, again.manifest.decks, again.changes) == (
        first.manifest.version, first.manifest.decks, first.changes,
    )  # fmt: skip
    assert first.changes.added

    (dist / "alpha.apkg").write_bytes(b"tampered")  # dist/ changed: rebuilt in full and repaired
    assert not build(content, dist, T0 + 5, options=options).up_to_date
    assert snapshot(dist) == files

    card = content / "alpha" / "sigmoid.md"
    card.write_text(card.read_text().replace("emphasis", "stress"))  # a source changed
    edited = build(content, dist, T0 + 10, options=options)
    assert not edited.up_to_date
    assert edited.manifest.card_index()["alpha-sigmoid"].mod == T0 + 10
    assert build(content, dist, T0 + 20, options=options).up_to_date


def test_a_same_size_edit_within_the_same_clock_tick_is_seen(content: Path, sample_cards: None, tmp_path: Path) -> None:
    cache = RenderCache(tmp_path / "cache")
    dist = tmp_path / "dist"
    card = content / "alpha" / "sigmoid.md"
    before = card.stat()
    build(content, dist, T0, options=Options(cache=cache))
    card.write_text(card.read_text().replace("emphasis", "emphasiz"))  # same size
    os.utime(card, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the same mtime
    rebuilt = build(content, dist, T0 + 5, options=Options(cache=cache))
    assert not rebuilt.up_to_date
    assert rebuilt.manifest.card_index()["alpha-sigmoid"].mod == T0 + 5


def test_an_unchanged_build_still_reports_its_warnings(content: Path, sample_cards: None, tmp_path: Path) -> None:
    (content / "alpha" / "nosource.md").write_text("---\nid: alpha-nosource\ntags: [x]\n---\n# Q?\n\nA.\n")
    settle(content)
    cache = RenderCache(tmp_path / "cache")
    dist = tmp_path / "dist"
    first = build(content, dist, T0, options=Options(cache=cache))
    again = build(content, dist, T0, options=Options(cache=cache))
    assert again.up_to_date
    assert again.warnings == first.warnings != ()
    with pytest.raises(BuildFailed):
        build(content, dist, T0, options=Options(cache=cache, strict=True))


def test_a_build_keeps_the_fields_and_lets_the_markdown_go(content: Path, sample_cards: None, tmp_path: Path) -> None:
    cache = RenderCache(tmp_path / "cache")
    fresh = build(content, tmp_path / "fresh", T0, options=Options(cache=cache))
    cached = build(content, tmp_path / "cached", T0, options=Options(cache=RenderCache(cache.folder)))
    assert fresh.cache_hits == 0 < cached.cache_hits == len(cached.cards)
    kept = compile_cards(content, cache=RenderCache(cache.folder)).cards  # what `decks check` and the tests see
    assert all(r.card.markdown is not None for r in kept)
    for result in (fresh, cached):
        assert [(r.card.id, r.fields, r.card.clozes) for r in result.cards] == [
            (r.card.id, r.fields, r.card.clozes) for r in kept
        ]
        assert all(r.card.markdown is None for r in result.cards)
        with pytest.raises(RuntimeError, match="compiled for packaging, without its Markdown"):
            result.cards[0].card.segments()  # never read as empty sides


# --- a cache is derived, never trusted ------------------------------------------------------------


def _rows(cache: RenderCache, kind: str | None = None) -> list[tuple[str, str, bytes]]:
    with contextlib.closing(sqlite3.connect(cache.database)) as connection:
        rows = connection.execute("SELECT kind, key, data FROM blobs").fetchall()
    return [row for row in rows if kind is None or row[0] == kind]


def _rewrite(cache: RenderCache, rows: list[tuple[str, str, bytes]]) -> None:
    with contextlib.closing(sqlite3.connect(cache.database)) as connection, connection:
        connection.executemany("UPDATE blobs SET data = ? WHERE kind = ? AND key = ?", [(d, k, n) for k, n, d in rows])


def _reseal(cache: RenderCache, edit: Callable[[bytes], bytes], key: bytes) -> dict[str, int]:
    """Rewrite every value in the cache: its data edited, then signed with another `key`."""
    import hashlib
    import hmac

    rewritten = []
    for kind, name, stored in _rows(cache):
        data = cache_module.verified(stored)
        assert data is not None, (kind, name)
        new = edit(data)
        rewritten.append((kind, name, new + hmac.new(key, new, hashlib.sha256).digest()))
    _rewrite(cache, rewritten)
    return {kind: sum(1 for row in rewritten if row[0] == kind) for kind in {row[0] for row in rewritten}}


def test_entries_packages_and_stamps_another_key_signed_are_never_used(
    content: Path, sample_cards: None, tmp_path: Path
) -> None:
    cache = RenderCache(tmp_path / "cache")
    cold = tmp_path / "cold"
    build(content, cold, T0)
    dist = tmp_path / "dist"
    build(content, dist, T0, options=Options(cache=cache))
    assert build(content, dist, T0, options=Options(cache=cache)).up_to_date

    # What a pull request could plant: well-formed entries whose MAC it made with a key of its own.
    planted = _reseal(cache, lambda data: data.replace(b"sigmoid", b"PLANTED"), key=b"k" * 32)
    assert planted["card"] >= 4 and planted["package"] >= 1 and planted["stamp"] == 1
    result = build(content, dist, T0, options=Options(cache=cache))
    assert not result.up_to_date
    assert result.cache_hits == 0
    assert snapshot(dist) == snapshot(cold)
    assert not any(b"PLANTED" in data for data in snapshot(dist).values())


@pytest.fixture
def own_key_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    """Fresh cache and state folders for this user (Linux layout), and the key read anew from them."""
    if sys.platform in ("win32", "darwin"):
        pytest.skip("the folders follow the XDG variables only on Linux and other Unix systems")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    cache_module._key_and_problem.cache_clear()
    yield cache_module.user_cache_root(), cache_module.user_state_root()
    cache_module._key_and_problem.cache_clear()


def test_a_package_streams_into_the_cache_and_back_and_a_changed_byte_is_a_miss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    monkeypatch.setattr(cache_module, "STREAM_CHUNK", 1000)  # several steps each way
    package = tmp_path / "made.apkg"
    package.write_bytes(bytes(range(256)) * 20)
    cache = RenderCache(tmp_path / "cache")
    cache.put_package("k", package)
    cache.flush()
    back = tmp_path / "back.apkg"
    assert RenderCache(cache.folder).get_package("k", back) == hashlib.sha256(package.read_bytes()).hexdigest()
    assert back.read_bytes() == package.read_bytes()
    assert RenderCache(cache.folder).get_package("other", tmp_path / "none.apkg") is None

    [(kind, name, stored)] = _rows(cache, "package")
    _rewrite(cache, [(kind, name, stored[:100] + bytes([stored[100] ^ 1]) + stored[101:])])
    assert RenderCache(cache.folder).get_package("k", back) is None
    assert not back.exists()


def test_a_package_read_while_another_build_prunes_is_never_another_package(tmp_path: Path) -> None:
    # A prune rebuilds the table and renumbers its rows: the row found and the blob read must be one.
    folder = tmp_path / "cache"
    writer = RenderCache(folder)
    for name, byte in (("b", b"B"), ("a", b"A")):  # the same size, both signed: only the key tells them apart
        (tmp_path / name).write_bytes(byte * 5000)
        writer.put_package(name, tmp_path / name)
    for n in range(cache_module.PRUNE_MINIMUM + 100):  # stale entries, so the other build does prune
        writer.put_encoded(compile_module.SourceFile(tmp_path / f"old{n}.md", "alpha", f"old {n}"), b"x")
    writer.flush()
    writer.close()
    reader, pruner = RenderCache(folder), RenderCache(folder)
    pruner._used[cache_module.PACKAGES] |= {"a", "b"}  # another build that used both packages and no card

    class PruneBeforeTheBlob:
        def __init__(self, connection: sqlite3.Connection) -> None:
            self.connection = connection

        def __getattr__(self, name: str) -> object:
            return getattr(self.connection, name)

        def blobopen(self, *args: object, **kwargs: object) -> object:
            pruner.prune()
            pruner.close()
            return self.connection.blobopen(*args, **kwargs)  # type: ignore[arg-type]

    connection = reader._open()
    assert connection is not None
    reader._connection = PruneBeforeTheBlob(connection)  # type: ignore[assignment]
    sha256 = reader.get_package("a", tmp_path / "out")
    assert sha256 is None or (tmp_path / "out").read_bytes() == b"A" * 5000


def test_the_signing_key_lives_outside_every_cache_folder(own_key_folders: tuple[Path, Path]) -> None:
    cache_root, state_root = own_key_folders
    cache_root.mkdir(parents=True)
    (cache_root / "key").write_bytes(b"o" * 32)  # where older versions kept it
    key = cache_module.user_key()
    stored = state_root / "cache-key"
    assert stored.read_bytes() == key != b"o" * 32
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert not (cache_root / "key").exists()


def test_a_relative_xdg_folder_is_ignored(
    own_key_folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_STATE_HOME", "state")  # would put the key in whatever folder a build runs from
    monkeypatch.setenv("XDG_CACHE_HOME", "cache")
    assert cache_module.user_state_root() == tmp_path / "home" / ".local" / "state" / cache_module.APP_NAME
    assert cache_module.user_cache_root() == tmp_path / "home" / ".cache" / cache_module.APP_NAME


@pytest.mark.parametrize("where", ["inside the cache folder", "unwritable"])
def test_without_a_key_kept_apart_the_cache_is_off_and_says_so(
    own_key_folders: tuple[Path, Path],
    content: Path,
    sample_cards: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    from click.testing import CliRunner

    from generator.cli import main

    cache_root, _ = own_key_folders
    if where == "inside the cache folder":
        monkeypatch.setenv("XDG_STATE_HOME", str(cache_root.parent))  # the key would travel with the cache
        expected = "lies inside the cache folder"
    else:
        monkeypatch.setenv("XDG_STATE_HOME", "/dev/null/state")
        expected = "cannot write /dev/null/state/"
    cache_module._key_and_problem.cache_clear()
    dist = tmp_path / "dist"
    for _ in range(2):
        result = CliRunner().invoke(main, ["build", "--content", str(content), "--dist", str(dist)])
        assert result.exit_code == 0, result.output
        assert "warning: the render cache is off: " in result.stderr and expected in result.stderr
        assert " 0 of " in result.stdout  # nothing served from a cache no lasting key vouches for
    assert not any(cache_root.rglob("cache-key"))


def test_a_restored_cache_folder_with_a_key_beside_its_entries_is_not_trusted(
    own_key_folders: tuple[Path, Path], content: Path, sample_cards: None, tmp_path: Path
) -> None:
    # A CI job restores a cache folder that another job (a pull request's) wrote: that job could plant
    # anything in it, even a key file beside entries and packages it signed with that key.
    cache_root, _ = own_key_folders
    cache = RenderCache(cache_root / "content")
    cold = tmp_path / "cold"
    build(content, cold, T0)
    dist = tmp_path / "dist"
    build(content, dist, T0, options=Options(cache=cache))
    planted_key = b"p" * 32
    (cache_root / "key").write_bytes(planted_key)
    planted = _reseal(cache, lambda data: data.replace(b"sigmoid", b"PLANTED"), key=planted_key)
    assert planted["card"] >= 4 and planted["package"] >= 1 and planted["stamp"] == 1
    cache_module._key_and_problem.cache_clear()  # as a new process reads it
    result = build(content, dist, T0, options=Options(cache=RenderCache(cache.folder)))
    assert not result.up_to_date
    assert result.cache_hits == 0
    assert snapshot(dist) == snapshot(cold)
    assert not any(b"PLANTED" in data for data in snapshot(dist).values())


def test_a_cached_field_passes_the_field_gate_again(content: Path, sample_cards: None, tmp_path: Path) -> None:
    cache = RenderCache(tmp_path / "cache")
    build(content, tmp_path / "first", T0, options=Options(cache=cache))
    # Even an entry signed with this user's key (say, written by an older, buggier renderer) is checked.
    entries = _rows(cache, "card")
    assert entries
    edited = []
    for kind, name, stored in entries:
        data = cache_module.verified(stored)
        assert data is not None
        edited.append(
            (kind, name, cache_module.sign(data.replace(b'"fields":["', b'"fields":["<script>alert(1)</script>', 1)))
        )
    _rewrite(cache, edited)
    with pytest.raises(BuildFailed, match="HTML outside the policy"):
        build(content, tmp_path / "second", T0, options=Options(cache=RenderCache(cache.folder)))


def _plant_script_in_card(cache: RenderCache, question: bytes, answer: bytes) -> None:
    """Sign (with this user's key) a cached card whose answer now holds a script."""
    [(kind, name, stored)] = [row for row in _rows(cache, "card") if question in row[2]]
    data = cache_module.verified(stored)
    assert data is not None
    _rewrite(cache, [(kind, name, cache_module.sign(data.replace(answer, b"<p><script>alert(7)</script></p>")))])


def _many_cards(write_card: WriteCard) -> None:
    for n in range(PARALLEL_THRESHOLD + 6):
        write_card("alpha", f"c{n}", f"id: alpha-c{n}\ntags: []\nsource: [alpha]", f"# Question {n}?\n\nAnswer {n}.\n")


def _cache_with_a_planted_script(write_card: WriteCard, content: Path, tmp_path: Path, jobs: int = 1) -> RenderCache:
    """A warm cache for many cards, one of which (c7.md) now holds a script signed with this user's key."""
    _many_cards(write_card)
    cache = RenderCache(tmp_path / "cache")
    build(content, tmp_path / "first", T0, options=Options(cache=cache, jobs=jobs))
    _plant_script_in_card(cache, b"Question 7?", b"<p>Answer 7.</p>")
    return cache


def test_cached_fields_are_gated_in_the_background_and_dist_waits_for_it(
    content: Path, write_card: WriteCard, tmp_path: Path
) -> None:
    cache = _cache_with_a_planted_script(write_card, content, tmp_path, jobs=2)
    dist = tmp_path / "first"  # what that build published (planting touched only the cache)
    before = snapshot(dist)
    write_card("alpha", "c0", "id: alpha-c0\ntags: []\nsource: [alpha]", "# Question 0?\n\nAnswer 0, edited.\n")

    # The planted card is a cache hit: compiling hands it on before the gate has judged it...
    compiled = compile_cards(content, jobs=2, cache=RenderCache(cache.folder), gate_later=True)
    assert compiled.pending is not None
    assert not compiled.errors
    # ...and the verdict, once in, takes it out with a located error.
    gated = compiled.gated()
    assert [d.location.path.name for d in gated.errors] == ["c7.md"]
    assert "HTML outside the policy" in gated.errors[0].message
    assert len(gated.cards) == len(compiled.cards) - 1

    packages = _rows(cache, "package")
    with pytest.raises(BuildFailed) as failure:
        build(content, dist, T0 + 100, options=Options(cache=RenderCache(cache.folder), jobs=2))
    assert [d.location.path.name for d in failure.value.diagnostics] == ["c7.md"]
    assert snapshot(dist) == before  # the edited card's deck was packaged meanwhile, and never published
    assert _rows(cache, "package") == packages  # nor cached: a package is stored once all its cards passed


def test_a_gate_that_dies_in_the_background_is_run_by_the_build_itself(
    content: Path, write_card: WriteCard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = _cache_with_a_planted_script(write_card, content, tmp_path)
    monkeypatch.setattr(compile_module, "_gate_in_child", lambda _writer: os._exit(3))  # as if killed
    with pytest.raises(BuildFailed) as failure:
        build(content, tmp_path / "second", T0, options=Options(cache=RenderCache(cache.folder)))
    assert [d.location.path.name for d in failure.value.diagnostics] == ["c7.md"]


def test_a_refused_cached_card_is_reported_before_what_the_plan_finds(
    content: Path, write_card: WriteCard, tmp_path: Path
) -> None:
    cache = _cache_with_a_planted_script(write_card, content, tmp_path)
    dist = tmp_path / "first"
    # A renamed deck: an error of the plan, found while the gate still runs.
    (content / "alpha" / "topic.yaml").write_text("name: Renamed Topic\ndescription: About alpha.\norder: 0\n")
    with pytest.raises(BuildFailed, match="would be renamed"):
        build(content, dist, T0, options=Options(cache=RenderCache(tmp_path / "clean")))
    with pytest.raises(BuildFailed) as failure:
        build(content, dist, T0, options=Options(cache=RenderCache(cache.folder)))
    assert [d.location.path.name for d in failure.value.diagnostics] == ["c7.md"]


def test_compile_errors_and_a_refused_cached_card_are_reported_together(
    content: Path, write_card: WriteCard, tmp_path: Path
) -> None:
    cache = _cache_with_a_planted_script(write_card, content, tmp_path)
    write_card("alpha", "broken", "id: alpha-c3\ntags: []\nsource: [alpha]", "# Broken?\n\nA duplicate id.\n")
    with pytest.raises(BuildFailed) as failure:
        build(content, tmp_path / "second", T0, options=Options(cache=RenderCache(cache.folder)))
    names = {d.location.path.name for d in failure.value.diagnostics if d.severity == "error"}
    assert names == {"c3.md", "c7.md"}  # c3.md: its id is also broken.md's


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_build_that_fails_while_the_gate_runs_leaves_no_gate_behind(
    content: Path, write_card: WriteCard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    import multiprocessing

    cache = _cache_with_a_planted_script(write_card, content, tmp_path)

    def fail(*_args: object) -> None:
        raise failure

    monkeypatch.setattr(build_module, "_package_all", fail)
    if isinstance(failure, Exception):
        # Any failure while packaging: the refused card is still what the build reports.
        with pytest.raises(BuildFailed) as refused:
            build(content, tmp_path / "second", T0, options=Options(cache=RenderCache(cache.folder)))
        assert [d.location.path.name for d in refused.value.diagnostics] == ["c7.md"]
    else:
        with pytest.raises(KeyboardInterrupt):  # interrupted: the gate is stopped, not waited for
            build(content, tmp_path / "second", T0, options=Options(cache=RenderCache(cache.folder)))
    assert not multiprocessing.active_children()
    assert not (tmp_path / "second").exists()


@pytest.mark.parametrize("jobs", [1, 2])
def test_without_fork_or_a_background_gate_cached_cards_are_gated_before_the_build_goes_on(
    content: Path, write_card: WriteCard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    cache = _cache_with_a_planted_script(write_card, content, tmp_path, jobs)
    # What `decks check` and a preview ask for: no gate left running.
    compiled = compile_cards(content, jobs=jobs, cache=RenderCache(cache.folder))
    assert compiled.pending is None
    assert [d.location.path.name for d in compiled.errors] == ["c7.md"]
    # Where processes cannot be forked (Windows), a build gates them the same way, before planning.
    monkeypatch.setattr(compile_module, "get_all_start_methods", lambda: ["spawn"])
    compiled = compile_cards(content, jobs=jobs, cache=RenderCache(cache.folder), gate_later=True)
    assert compiled.pending is None
    assert [d.location.path.name for d in compiled.errors] == ["c7.md"]


def test_a_fresh_card_the_gate_refuses_is_not_cached(
    content: Path, write_card: WriteCard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _many_cards(write_card)
    real_gate = compile_module.field_gate

    def refuse_card_5(rendered: RenderedCard) -> list[Diagnostic]:
        if rendered.card.path.name == "c5.md":
            return [error(Location(rendered.card.path, 1, 1), "refused (a stand-in for a renderer bug)")]
        return real_gate(rendered)

    monkeypatch.setattr(compile_module, "field_gate", refuse_card_5)  # forked workers inherit it
    cache = RenderCache(tmp_path / "cache")
    with pytest.raises(BuildFailed, match="refused"):
        build(content, tmp_path / "dist", T0, options=Options(cache=cache, jobs=2))
    entries = _rows(cache, "card")
    assert len(entries) == PARALLEL_THRESHOLD + 5
    assert not [row for row in entries if b"Question 5?" in row[2]]


def test_the_cache_key_covers_every_module_of_the_generator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "generator"
    shutil.copytree(cache_module.PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cache_module, "PACKAGE_ROOT", copy)
    cache_module.generator_digest.cache_clear()
    try:
        before = cache_module.generator_digest()
        for module in sorted(copy.rglob("*.py")):
            original = module.read_bytes()
            module.write_bytes(original + b"\n# changed\n")
            cache_module.generator_digest.cache_clear()
            assert cache_module.generator_digest() != before, module.name
            module.write_bytes(original)
    finally:
        cache_module.generator_digest.cache_clear()


def test_the_default_cache_lies_outside_the_checkout(content: Path) -> None:
    folder = cache_module.default_cache_folder(content)
    assert not folder.resolve().is_relative_to(content.resolve().parent)


def test_entries_a_build_no_longer_uses_are_pruned_once_enough_piled_up(
    content: Path, sample_cards: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_module, "PRUNE_MINIMUM", 0)  # the sample is a handful of cards: prune at once
    cache_folder = tmp_path / "cache"
    dist = tmp_path / "dist"
    first = build(content, dist, T0, options=Options(cache=RenderCache(cache_folder)))
    cache = RenderCache(cache_folder)
    cards_in_use = len(first.cards)
    assert len(_rows(cache, "card")) == cards_in_use
    edited = content / "alpha" / "sigmoid.md"
    for round_ in range(3):  # each edit leaves the card's old entry and the old packages behind
        edited.write_text(edited.read_text().replace("with *emphasis*", f"with *emphasis* ({round_})", 1))
        result = build(content, dist, T0 + 10 + round_, options=Options(cache=RenderCache(cache_folder)))
        assert result.cache_hits == cards_in_use - 1
    assert len(_rows(cache, "card")) == cards_in_use  # only what the last build used is left
    assert len(_rows(cache, "package")) == len(result.manifest.decks) + 1  # its topic packages and all-topics
    again = build(content, tmp_path / "other", T0 + 20, options=Options(cache=RenderCache(cache_folder)))
    assert again.cache_hits == cards_in_use


def test_entries_a_check_left_are_pruned_by_the_next_build(
    content: Path, sample_cards: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_module, "PRUNE_MINIMUM", 0)
    cache_folder = tmp_path / "cache"
    dist = tmp_path / "dist"
    build(content, dist, T0, options=Options(cache=RenderCache(cache_folder)))
    edited = content / "alpha" / "sigmoid.md"
    for round_ in range(4):  # edits checked, never built: each leaves an entry
        edited.write_text(edited.read_text().replace("with *emphasis*", f"with *emphasis* ({round_})", 1))
        check(content, dist, T0, options=Options(cache=RenderCache(cache_folder)), package=False)
    cache = RenderCache(cache_folder)
    cards = len(_rows(cache, "card"))
    result = build(content, dist, T0 + 10, options=Options(cache=RenderCache(cache_folder)))
    assert cards == len(result.cards) + 4
    assert len(_rows(cache, "card")) == len(result.cards)


def test_pruning_gives_way_to_another_build_writing(
    content: Path, sample_cards: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_module, "PRUNE_MINIMUM", 0)
    cache_folder = tmp_path / "cache"
    build(content, tmp_path / "dist", T0, options=Options(cache=RenderCache(cache_folder)))
    (content / "alpha" / "sigmoid.md").unlink()  # its entry is now unused
    cache = RenderCache(cache_folder)
    rows = _rows(cache, "card")
    waited: list[float] = []
    prune = RenderCache.prune

    def prune_while_another_build_writes(self: RenderCache) -> None:
        with contextlib.closing(sqlite3.connect(self.database)) as other:
            other.execute("BEGIN IMMEDIATE")  # another build, holding the write lock
            started = time.monotonic()
            prune(self)
            waited.append(time.monotonic() - started)
            other.rollback()

    with monkeypatch.context() as patch:
        patch.setattr(RenderCache, "prune", prune_while_another_build_writes)
        build(content, tmp_path / "dist", T0 + 10, options=Options(cache=cache, allow_removal=True))
    assert len(waited) == 1 and waited[0] < 5  # a moment, not the minute a build's own writes may wait
    assert _rows(cache, "card") == rows  # nothing pruned while it waited: it is left for another build
    build(content, tmp_path / "dist2", T0 + 20, options=Options(cache=RenderCache(cache_folder)))
    assert len(_rows(cache, "card")) == len(rows) - 1


def test_a_cache_of_an_earlier_layout_is_removed(content: Path, sample_cards: None, tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    folder.mkdir()
    (folder / "cache.sqlite3").write_bytes(b"an earlier layout")
    build(content, tmp_path / "dist", T0, options=Options(cache=RenderCache(folder)))
    assert sorted(p.name for p in folder.iterdir()) == [cache_module.DATABASE_FILE]


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files the build reads from now on."""
    names: list[str] = []
    original = load_module._read_text

    def counting(path: Path, *args: object) -> object:
        names.append(path.name)
        return original(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(load_module, "_read_text", counting)
    return names


def _vouch_for_changes_before(monkeypatch: pytest.MonkeyPatch, instant_ns: int) -> None:
    """From now on, builds record files changed (mtime or ctime) before `instant_ns`, and only those.

    Backdating a file with utime moves its ctime to now: instead, the build's idea of "recent" moves.
    """
    monkeypatch.setattr(compile_module, "RACY_MARGIN_NS", time.time_ns() - instant_ns)


def _md_reads(names: list[str]) -> list[str]:
    return [name for name in names if name.endswith(".md")]


def test_a_rebuild_reads_only_the_card_files_that_changed(
    content: Path, sample_cards: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    time.sleep(0.05)
    written = time.time_ns()
    time.sleep(0.05)
    _vouch_for_changes_before(monkeypatch, written)
    cache = RenderCache(tmp_path / "cache")
    build(content, tmp_path / "first", T0, options=Options(cache=cache))
    edited = content / "alpha" / "sigmoid.md"
    edited.write_text(edited.read_text().replace("emphasis", "stress"))
    # Copied with its old mtime (cp -p, tar): the ctime says it changed after the instant vouched for.
    restored = content / "alpha" / "table.md"
    restored.write_bytes(restored.read_bytes())
    os.utime(restored, ns=(written - 10**9, written - 10**9))
    names = _count_reads(monkeypatch)
    _vouch_for_changes_before(monkeypatch, written)
    warm = tmp_path / "warm"
    result = build(content, warm, T0, options=Options(cache=RenderCache(cache.folder)))
    assert _md_reads(names) == ["sigmoid.md", "table.md"]
    assert result.cache_hits == len(result.cards) - 1
    build(content, tmp_path / "cold", T0)
    assert snapshot(warm) == snapshot(tmp_path / "cold")

    # Changed after the instant it vouches for, the two files are not recorded (a second edit in the same
    # clock tick could keep the mtime): the next build reads them again, and only them.
    known = RenderCache(cache.folder).known_sources(content.resolve())
    assert str(edited.resolve()) not in known
    assert str(restored.resolve()) not in known
    assert str((content / "alpha" / "dense.md").resolve()) in known
    names.clear()
    build(content, tmp_path / "again", T0, options=Options(cache=RenderCache(cache.folder)))
    assert _md_reads(names) == ["sigmoid.md", "table.md"]


def test_a_card_rewritten_to_its_old_size_and_mtime_is_read_again(
    content: Path, sample_cards: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _vouch_for_changes_before(monkeypatch, time.time_ns() + 60 * 10**9)  # every change so far, and this one
    cache = RenderCache(tmp_path / "cache")
    build(content, tmp_path / "first", T0, options=Options(cache=cache))
    edited = content / "alpha" / "sigmoid.md"
    before = edited.stat()
    edited.write_text(edited.read_text().replace("emphasis", "emphasiz"))
    os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns))  # what a careless tool or a restore does
    assert (edited.stat().st_size, edited.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    names = _count_reads(monkeypatch)
    warm = tmp_path / "warm"
    build(content, warm, T0, options=Options(cache=RenderCache(cache.folder)))
    assert _md_reads(names) == ["sigmoid.md"]  # its ctime moved
    build(content, tmp_path / "cold", T0)
    assert snapshot(warm) == snapshot(tmp_path / "cold")
    assert snapshot(warm)["alpha.apkg"] != snapshot(tmp_path / "first")["alpha.apkg"]


def test_the_files_known_to_another_generator_or_without_an_entry_are_read(
    content: Path, sample_cards: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _vouch_for_changes_before(monkeypatch, time.time_ns() + 60 * 10**9)
    cache = RenderCache(tmp_path / "cache")
    build(content, tmp_path / "first", T0, options=Options(cache=cache))
    cards = sorted(p.name for p in content.rglob("*.md"))
    cold = tmp_path / "cold"
    build(content, cold, T0)

    # The entries are gone (another content folder's build pruned them, say): each file is read after all.
    with contextlib.closing(sqlite3.connect(cache.database)) as connection, connection:
        connection.execute("DELETE FROM blobs WHERE kind = 'card'")
    names = _count_reads(monkeypatch)
    gone = tmp_path / "gone"
    build(content, gone, T0, options=Options(cache=RenderCache(cache.folder)))
    assert sorted(_md_reads(names)) == cards
    assert snapshot(gone) == snapshot(cold)
    names.clear()
    build(content, tmp_path / "again", T0, options=Options(cache=RenderCache(cache.folder)))
    assert not _md_reads(names)  # recorded again as they were read

    # A record made under another generator names entries of that generator: it is not used.
    names.clear()
    monkeypatch.setattr(cache_module, "environment_key", lambda: "another generator")
    other = tmp_path / "other"
    build(content, other, T0, options=Options(cache=RenderCache(cache.folder)))
    assert sorted(_md_reads(names)) == cards
    assert snapshot(other) == snapshot(cold)
