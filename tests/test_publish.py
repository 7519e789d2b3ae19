"""Publishing a release into dist/: all or nothing, locked, and only our own files touched."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from generator.release import publish as publish_module
from generator.release.publish import PublishError, StagedFile, publish


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_release_replaces_owned_files_and_keeps_the_rest(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    publish(dist, {"a.apkg": b"1", "manifest.json": b"m1"}, set(), last="manifest.json")
    (dist / "mine.apkg").write_bytes(b"user's own")
    publish(dist, {"b.apkg": b"2", "manifest.json": b"m2"}, {"a.apkg", "manifest.json"}, last="manifest.json")
    assert contents(dist) == {"b.apkg": b"2", "manifest.json": b"m2", "mine.apkg": b"user's own"}
    assert not list(tmp_path.glob(".staging-*"))


def test_without_folder_exchange_each_file_is_replaced_manifest_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    real_replace = os.replace

    def recording_replace(source: str | Path, target: str | Path) -> None:
        order.append(Path(target).name)
        real_replace(source, target)

    dist = tmp_path / "dist"
    publish(dist, {"a.apkg": b"1", "manifest.json": b"m1"}, set(), last="manifest.json")
    monkeypatch.setattr(publish_module, "_exchange", lambda _first, _second: False)
    monkeypatch.setattr(publish_module.os, "replace", recording_replace)
    publish(dist, {"a.apkg": b"2", "z.apkg": b"3", "manifest.json": b"m2"}, {"a.apkg"}, last="manifest.json")
    assert order == ["a.apkg", "z.apkg", "manifest.json"]
    assert contents(dist) == {"a.apkg": b"2", "manifest.json": b"m2", "z.apkg": b"3"}


def test_a_second_build_waits_for_the_lock_then_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "dist"
    publish(dist, {"manifest.json": b"m1"}, set(), last="manifest.json")
    monkeypatch.setattr(publish_module, "LOCK_TIMEOUT", 0.3)
    holder = os.open(dist, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with pytest.raises(PublishError, match="is locked by another build"):
            publish(dist, {"manifest.json": b"m2"}, {"manifest.json"}, last="manifest.json")
    finally:
        os.close(holder)
    assert contents(dist) == {"manifest.json": b"m1"}


def test_leftovers_of_a_killed_build_are_removed(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    publish(dist, {"manifest.json": b"m1"}, set(), last="manifest.json")
    leftover = tmp_path / ".staging-dist-99999"
    leftover.mkdir()
    (leftover / "half.apkg").write_bytes(b"x")
    (dist / ".a.apkg.123.tmp").write_bytes(b"x")
    publish(dist, {"manifest.json": b"m2"}, {"manifest.json"}, last="manifest.json")
    assert not leftover.exists()
    assert contents(dist) == {"manifest.json": b"m2"}


def _staged(folder: Path, name: str, data: bytes) -> StagedFile:
    import hashlib

    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(data)
    return StagedFile.written(folder / name, hashlib.sha256(data).hexdigest())


def test_a_file_staged_on_disk_is_published_like_bytes(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    package = _staged(tmp_path / "packages", "a.apkg", b"package bytes" * 1000)
    publish(dist, {"a.apkg": package, "manifest.json": b"m1"}, set(), last="manifest.json")
    assert contents(dist) == {"a.apkg": b"package bytes" * 1000, "manifest.json": b"m1"}
    assert package.path.exists()  # copied, not moved: the build still owns its staging

    # The same content again: dist/ is left alone (compared by content, not by where it lies).
    before = os.stat(dist).st_ino, os.stat(dist / "a.apkg").st_mtime_ns
    same = _staged(tmp_path / "elsewhere", "a.apkg", b"package bytes" * 1000)
    publish(dist, {"a.apkg": same, "manifest.json": b"m1"}, {"a.apkg", "manifest.json"}, last="manifest.json")
    assert (os.stat(dist).st_ino, os.stat(dist / "a.apkg").st_mtime_ns) == before
    assert same == package

    changed = _staged(tmp_path / "third", "a.apkg", b"package bytez" * 1000)  # same size, other bytes
    assert changed != package
    publish(dist, {"a.apkg": changed, "manifest.json": b"m1"}, {"a.apkg", "manifest.json"}, last="manifest.json")
    assert contents(dist)["a.apkg"] == b"package bytez" * 1000
