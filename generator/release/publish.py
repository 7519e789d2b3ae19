"""Write a release into `dist/` as one unit: readers see the whole old release or the whole new one.

The new files are written into a staging folder next to `dist/`, then the two
folders are swapped in one atomic `renameat2(RENAME_EXCHANGE)` where the system
has it (Linux); elsewhere each file is replaced atomically, `manifest.json`
last. A lock on `dist/` keeps two builds from interleaving; leftovers of a build
that was killed are removed by the next one. Files in `dist/` that this project
did not make are kept: only files the previous manifest lists are ever removed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

STAGING_PREFIX = ".staging-"
COPY_CHUNK = 1 << 20  # bytes per read when a staged file is copied in
LOCK_TIMEOUT = 120.0  # seconds a second build waits for the first one
RENAME_EXCHANGE = 2


class PublishError(Exception):
    """dist/ could not be written; the message names the path and the reason."""


@dataclass(frozen=True, slots=True)
class StagedFile:
    """A finished file on disk (a package, the manifest): it reaches dist/ by a copy on disk, never through memory.

    Equal to another by content (digest and size), wherever each lies.
    """

    path: Path = field(compare=False)
    sha256: str
    size: int

    @classmethod
    def written(cls, path: Path, sha256: str) -> StagedFile:
        return cls(path, sha256, path.stat().st_size)


Output = bytes | StagedFile  # a file of a build: in memory, or already on disk


def digest(output: Output) -> str:
    """The SHA-256 (hex) of a build's file."""
    return output.sha256 if isinstance(output, StagedFile) else hashlib.sha256(output).hexdigest()


def publish(dist_dir: Path, files: Mapping[str, Output], owned: set[str], last: str) -> None:
    """Make `dist_dir` hold `files`, removing the previously `owned` files not among them; `last` goes last."""
    try:
        dist_dir.mkdir(parents=True, exist_ok=True)
        with _locked(dist_dir) as dist:
            if all(same_content(dist / name, data) for name, data in files.items()) and not _stale(dist, files, owned):
                return  # nothing to do: leave dist/ (and its mtimes) alone
            staging = dist.parent / f"{STAGING_PREFIX}{dist.name}-{os.getpid()}"
            _remove(staging)
            try:
                staging.mkdir()
                for entry in sorted(dist.iterdir()):
                    if entry.name not in files and entry.name not in owned:
                        _carry_over(entry, staging / entry.name)
                for name in [*sorted(n for n in files if n != last), last]:
                    _write_synced(staging / name, files[name])
                _fsync_dir(staging)
                if _exchange(staging, dist):
                    _fsync_dir(dist.parent)
                else:
                    _replace_each(staging, dist, files, owned, last)
            finally:
                _remove(staging)
    except OSError as exc:
        where = exc.filename or dist_dir
        raise PublishError(f"cannot write {where}: {exc.strerror or exc}") from exc


def _flock() -> ModuleType | None:
    """The POSIX `fcntl` module, or None where it does not exist (Windows): chosen at run time."""
    try:
        import fcntl
    except ImportError:
        return None
    return fcntl


@contextmanager
def _locked(dist_dir: Path) -> Iterator[Path]:
    """Hold an exclusive lock on the folder now at `dist_dir` (a swap replaces the folder itself)."""
    fcntl = _flock()
    if fcntl is None or not hasattr(os, "O_DIRECTORY"):
        with _lock_file(dist_dir):
            _clean_leftovers(dist_dir)
            yield dist_dir
        return
    deadline = time.monotonic() + LOCK_TIMEOUT
    while True:
        handle = os.open(dist_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise PublishError(
                            f"{dist_dir} is locked by another build for over {LOCK_TIMEOUT:.0f} s; try again"
                        ) from None
                    time.sleep(0.05)
            if os.path.samestat(os.fstat(handle), os.stat(dist_dir)):
                _clean_leftovers(dist_dir)
                yield dist_dir
                return
        finally:
            os.close(handle)
        # Another build swapped a new folder in while we waited: lock that one.


@contextmanager
def _lock_file(dist_dir: Path) -> Iterator[None]:
    """The portable lock: a file next to dist/ that only one build can create.

    Used where `flock` on a folder is unavailable (Windows). A lock older than
    the timeout was left by a killed build and is taken over.
    """
    lock = dist_dir.parent / f".{dist_dir.name}.lock"
    deadline = time.monotonic() + LOCK_TIMEOUT
    while True:
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            break
        except FileExistsError:
            try:
                stale = time.time() - lock.stat().st_mtime > LOCK_TIMEOUT
            except OSError:
                stale = False
            if stale:
                lock.unlink(missing_ok=True)
                continue
            if time.monotonic() > deadline:
                raise PublishError(f"{dist_dir} is locked by another build ({lock}); try again") from None
            time.sleep(0.05)
    try:
        os.close(handle)
        yield
    finally:
        lock.unlink(missing_ok=True)


def _clean_leftovers(dist_dir: Path) -> None:
    for leftover in dist_dir.parent.glob(f"{STAGING_PREFIX}{dist_dir.name}-*"):
        _remove(leftover)
    for temp in dist_dir.glob(".*.tmp"):  # left by older versions of the build
        temp.unlink(missing_ok=True)


def same_content(path: Path, data: Output) -> bool:
    """Whether the file at `path` holds exactly `data` (False if it cannot be read)."""
    try:
        if isinstance(data, StagedFile):
            if path.stat().st_size != data.size:
                return False
            with open(path, "rb") as existing:
                return hashlib.file_digest(existing, "sha256").hexdigest() == data.sha256
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def _stale(dist: Path, files: Mapping[str, Output], owned: set[str]) -> bool:
    return any((dist / name).exists() for name in owned - files.keys())


def _carry_over(source: Path, target: Path) -> None:
    """Keep a file we did not make: a hard link costs no copy."""
    if source.is_dir() and not source.is_symlink():
        shutil.copytree(source, target, symlinks=True, copy_function=_link_or_copy)
    elif source.is_symlink():
        target.symlink_to(os.readlink(source))
    else:
        _link_or_copy(str(source), str(target))


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _write_synced(path: Path, data: Output) -> None:
    with open(path, "wb") as out:
        if isinstance(data, StagedFile):
            with open(data.path, "rb") as source:
                shutil.copyfileobj(source, out, COPY_CHUNK)
        else:
            out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(path, 0o644)


def _fsync_dir(path: Path) -> None:
    if not hasattr(os, "O_DIRECTORY"):
        return  # Windows cannot open a folder to sync it; its renames are durable on their own
    handle = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two folders atomically; False where the system cannot (anywhere but Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False  # e.g. a file system without exchange
    raise OSError(code, os.strerror(code), str(second))


def _replace_each(staging: Path, dist: Path, files: Mapping[str, Output], owned: set[str], last: str) -> None:
    for name in [*sorted(n for n in files if n != last), last]:
        os.replace(staging / name, dist / name)
    for name in sorted(owned - files.keys()):
        (dist / name).unlink(missing_ok=True)
    _fsync_dir(dist)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)
