"""A per-card cache of compiled cards, so a rebuild renders only what changed.

The key hashes everything a card's compilation depends on: its path, topic
and text, every source file of the generator package and the versions of the
libraries that render (Markdown, Pygments, the sanitiser, the YAML loader).
Images are read from disk, so an entry also records each image's size and
mtime and is used only while they still match. Everything lives in one
SQLite database, written in one transaction per build, so two builds can
share a cache; an unreadable entry is a miss, never an error. Cards with
errors are not cached: what they point at may appear later.

Per content folder, the cache also records each cached card file's size,
mtime, ctime and inode with its entry's key, so the next build under the
same generator finds an unchanged file's entry without reading the file
(as git's index does; a file whose mtime or ctime lies in the two seconds
before the build is not recorded, since a second write in the same clock
tick could keep both). Not on Windows, where the ctime is the creation time.

A cache is derived, never trusted. It lives in the user's cache folder, not in
the checkout (a pull request cannot add to it), and every entry, package and
stamp carries a MAC made with a secret key that only this user's builds read
(`user_key`, kept outside every cache folder): an entry this user's build did
not write is a miss, even in a cache folder restored from elsewhere. The build
still runs the field gate on everything a cache returns (see
`generator.cards.compile`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import stat
import sys
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from generator.diagnostics import Diagnostic, Location

if TYPE_CHECKING:
    from generator.cards.load import FileSignature, SourceFile
    from generator.cards.model import RenderedCard

CACHE_FORMAT = 3
DATABASE_FILE = "cache-2.sqlite3"
OLD_DATABASE_FILES = ("cache.sqlite3",)  # earlier layouts, removed when the current one is made
# A rowid table: its values are kilobytes to megabytes, which SQLite stores best outside the key's B-tree
# (a WITHOUT ROWID table wrote them three times slower and read them twice as slowly).
COLUMNS = "(kind TEXT, key TEXT, data BLOB, PRIMARY KEY (kind, key))"
SCHEMA = f"CREATE TABLE IF NOT EXISTS blobs {COLUMNS}"
CARDS, PACKAGES, STAMPS = "card", "package", "stamp"  # the kinds of value in the database
INDEX = "index"  # per content folder: the card files whose entries are known without reading them
# Only where a file's ctime is the time of its last change: on Windows it is the time it was created.
FILE_INDEX = os.name != "nt"
PRUNE_SHARE, PRUNE_MINIMUM = 0.25, 200  # prune once unused entries exceed this share of those in use, plus this many
PRUNE_WAIT_MS = 100  # pruning waits this long for another build's lock, then leaves it for later
READ_BATCH = 500  # keys per query: under SQLite's limit on parameters, and few round trips
LOCK_TIMEOUT_SECONDS = 60.0  # another build writing its transaction
DEPENDENCIES = ("markdown", "pygments", "nh3", "pyyaml", "genanki")
APP_NAME = "dl-interview-decks"
MAC_BYTES = 32
STREAM_CHUNK = 1 << 20  # bytes per step when a package streams between its file and its row
PACKAGE_ROOT = Path(__file__).resolve().parent


@cache
def generator_digest() -> str:
    """Hash of every source file of the generator package: no hand-kept list to forget a module."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE_ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@cache
def environment_key() -> str:
    """Hash of the generator's code and the rendering libraries' versions."""
    digest = hashlib.sha256(f"format {CACHE_FORMAT}\n{generator_digest()}\n".encode())
    for name in DEPENDENCIES:
        try:
            digest.update(f"{name} {metadata.version(name)}\n".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{name} missing\n".encode())
    return digest.hexdigest()


def package_environment_key() -> str:
    """Hash of what turns notes into a package (the same whole-package hash)."""
    return environment_key()


def user_cache_root() -> Path:
    """The platform's per-user cache folder for this project (outside any checkout)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = _xdg_folder("XDG_CACHE_HOME", Path.home() / ".cache")
    return base / APP_NAME


def default_cache_folder(content_dir: Path) -> Path:
    """One cache per content folder, under the user's cache root."""
    name = hashlib.sha256(str(content_dir.resolve()).encode()).hexdigest()[:16]
    return user_cache_root() / name


def user_state_root() -> Path:
    """The platform's per-user folder for this project's own state: the signing key, never a cache."""
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = _xdg_folder("XDG_STATE_HOME", Path.home() / ".local" / "state")
    return base / APP_NAME


def _xdg_folder(variable: str, default: Path) -> Path:
    """An XDG base folder: the variable's value if it is an absolute path (the spec ignores others)."""
    value = os.environ.get(variable, "")
    return Path(value) if os.path.isabs(value) else default


def key_path() -> Path:
    return user_state_root() / "cache-key"


def user_key() -> bytes:
    """The secret this user's builds sign cache entries with, made on first use (mode 0600).

    It is never inside a checkout, so content from a pull request cannot know it, and never inside
    the cache folder: a cache folder gets shared, restored and copied (a CI cache, a backup), and a
    key inside it would travel with the entries it vouches for. Without a key kept that way there is
    no cache to trust: a fresh random key per process makes every entry a miss (`key_problem` says why).
    """
    return _key_and_problem()[0]


def key_problem() -> str | None:
    """Why this process has no lasting signing key (and so no cache hits), or None when it has one."""
    return _key_and_problem()[1]


@cache
def _key_and_problem() -> tuple[bytes, str | None]:
    path = key_path()
    if _inside(path, user_cache_root()):
        return secrets.token_bytes(MAC_BYTES), f"its folder {path.parent} lies inside the cache folder"
    try:
        data = path.read_bytes()
        if len(data) == MAC_BYTES:
            return data, None
    except OSError:
        pass
    key = secrets.token_bytes(MAC_BYTES)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        os.replace(temp, path)
        stored = path.read_bytes()  # another build may have won the race: use what is on disk
        (user_cache_root() / "key").unlink(missing_ok=True)  # where older versions kept it: it signs nothing now
        return (stored, None) if len(stored) == MAC_BYTES else (key, None)
    except OSError as failure:
        return key, f"cannot write {path}: {failure.strerror or failure}"


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def sign(data: bytes) -> bytes:
    """`data` followed by its MAC under this user's key."""
    return data + hmac.digest(user_key(), data, "sha256")  # one-shot: a quarter cheaper than an HMAC object


def verified(stored: bytes) -> bytes | None:
    """The data of a `sign`ed blob, or None when this user's key did not sign it."""
    data, mac = stored[:-MAC_BYTES], stored[-MAC_BYTES:]
    if len(stored) <= MAC_BYTES:
        return None
    return data if hmac.compare_digest(hmac.digest(user_key(), data, "sha256"), mac) else None


RACY_MARGIN_NS = 2_000_000_000  # file systems keep mtimes in coarse ticks: allow two seconds


class FileStatus(NamedTuple):
    """What the up-to-date check compares of one file or folder (10,000 of them: not whole `os.stat_result`s)."""

    path: str
    mode: int
    size: int
    mtime_ns: int
    inode: int


def tree_status(root: Path) -> list[FileStatus] | None:
    """Every file and folder under `root` with its status, in a fixed order; None if a symlink is among them."""
    found: list[FileStatus] = []
    for directory, subfolders, names in os.walk(root):
        subfolders.sort()
        for name in [*subfolders, *sorted(names)]:
            path = os.path.join(directory, name)
            try:
                status = os.lstat(path)
            except OSError:
                return None
            if stat.S_ISLNK(status.st_mode):
                return None  # a link's target can change unseen: always build in full
            found.append(FileStatus(path, status.st_mode, status.st_size, status.st_mtime_ns, status.st_ino))
    return found


def tree_fingerprint(tree: list[FileStatus], racy_after_ns: int) -> str | None:
    """Hash of every file's name, size, mtime and inode (from `tree_status`).

    A file modified at or after `racy_after_ns` is hashed by its bytes too: a
    second edit in the same clock tick would keep its size and mtime (the
    "racy git" problem). A later check passes the same instant, so any file
    changed since then is read, not trusted by its mtime.
    """
    digest = hashlib.sha256()
    for path, mode, size, mtime_ns, inode in tree:
        digest.update(f"{path}\0{mode}\0{size}\0{mtime_ns}\0{inode}\n".encode())
        if mtime_ns >= racy_after_ns and stat.S_ISREG(mode):
            try:
                with open(path, "rb") as handle:
                    digest.update(hashlib.sha256(handle.read()).digest())
            except OSError:
                return None
    return digest.hexdigest()


class RenderCache:
    """Compiled cards, packages and up-to-date stamps in one SQLite database in the cache folder.

    One file instead of one per card: a build reads what it needs by key and writes what it
    made in one transaction (committed by `flush`), with no thousands of small files to sync.
    Every value is `sign`ed; a value this user's build did not sign is a miss. The database is
    derived: one that cannot be opened or read is made afresh (or the build runs without it).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._connection: sqlite3.Connection | None = None
        self._broken = False
        self._used: dict[str, set[str]] = {CARDS: set(), PACKAGES: set()}  # keys this build read or wrote

    @property
    def database(self) -> Path:
        return self.folder / DATABASE_FILE

    def key(self, source: SourceFile) -> str:
        if source.text is None:
            assert source.known_key is not None  # an unread file is one this cache recorded
            return source.known_key
        digest = hashlib.sha256(environment_key().encode())
        for part in (str(source.path), source.topic, source.text):
            digest.update(b"\0" + part.encode())
        return digest.hexdigest()

    def _decoded(
        self, data: bytes, source: SourceFile, keep_markdown: bool
    ) -> tuple[RenderedCard | None, tuple[Diagnostic, ...]] | None:
        try:
            entry = json.loads(data)
            if entry["card"]["path"] != str(source.path):
                return None
            return _decode(entry, source.path, keep_markdown)
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            return None  # corrupt or stale: compile again

    def get_many(
        self, sources: list[SourceFile], *, keep_markdown: bool = True
    ) -> list[tuple[RenderedCard | None, tuple[Diagnostic, ...]] | None]:
        """Each source's compiled card and diagnostics, in order (None: a miss), in a few queries for all of them.

        A value this user's build did not sign, or one that cannot be decoded, is a miss. Without
        `keep_markdown`, the cards come without their Markdown (`Card.without_markdown`).
        """
        results: list[tuple[RenderedCard | None, tuple[Diagnostic, ...]] | None] = []
        for start in range(0, len(sources), READ_BATCH):  # a batch's raw values are dropped once decoded
            batch = sources[start : start + READ_BATCH]
            keys = [self.key(source) for source in batch]
            found = self._read_many(CARDS, keys)
            for source, key in zip(batch, keys, strict=True):
                data = found.get(key)
                results.append(None if data is None else self._decoded(data, source, keep_markdown))
        return results

    def put_encoded(self, source: SourceFile, entry: bytes) -> None:
        """Store an entry made by `encode_entry` (in a worker process, say); `flush` commits it."""
        self._write(CARDS, self.key(source), entry)

    def known_sources(self, content_root: Path) -> dict[str, tuple[FileSignature, str]]:
        """The card files of `content_root` the last build cached, by path: signature when read, and entry key.

        Recorded under this generator only: its keys are no use to another (`environment_key`).
        """
        if not FILE_INDEX:
            return {}
        data = self._read(INDEX, _index_name(content_root))
        try:
            index = json.loads(data) if data is not None else None
            if not isinstance(index, dict) or index.get("environment") != environment_key():
                return {}
            return {path: (tuple(value[:4]), value[4]) for path, value in index["files"].items()}
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            return {}

    def remember_sources(self, content_root: Path, sources: list[SourceFile]) -> None:
        """Record which entry each of these read, signed files has, for the next build (see `known_sources`)."""
        if not FILE_INDEX:
            return
        files = {str(s.path): [*s.signature, self.key(s)] for s in sources if s.signature is not None}
        index = {"environment": environment_key(), "files": files}
        self._write(INDEX, _index_name(content_root), sign(json.dumps(index, separators=(",", ":")).encode()))

    def load_stamp(self, name: str) -> dict[str, Any] | None:
        """What the last successful build into a dist/ recorded (see `generator.build`)."""
        signed = self._read(STAMPS, name)
        try:
            data = json.loads(signed) if signed is not None else None
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def save_stamp(self, name: str, data: dict[str, Any]) -> None:
        self._write(STAMPS, name, sign(json.dumps(data).encode()))

    def get_package(self, key: str, target: Path) -> str | None:
        """Write the package made before from the same inputs to `target`; return its SHA-256 (None: a miss).

        Streamed, never whole in memory. Its trailing MAC proves this user's build made it whole; on a
        mismatch `target` is removed and it is a miss.
        """
        self._used[PACKAGES].add(key)
        connection = self._open()
        if connection is None:
            return None
        mac, content = hmac.new(user_key(), digestmod=hashlib.sha256), hashlib.sha256()
        # The rowid and the blob are read in one transaction: another build's prune renumbers the rows.
        began = not connection.in_transaction
        try:
            if began:
                connection.execute("BEGIN")
            row = connection.execute(
                "SELECT rowid, length(data) FROM blobs WHERE kind = ? AND key = ? AND typeof(data) = 'blob'",
                (PACKAGES, key),
            ).fetchone()
            if row is None or row[1] <= MAC_BYTES:
                return None
            with connection.blobopen("blobs", "data", row[0], readonly=True) as blob, open(target, "wb") as out:
                for _ in range(0, row[1] - MAC_BYTES, STREAM_CHUNK):
                    chunk = blob.read(min(STREAM_CHUNK, row[1] - MAC_BYTES - blob.tell()))
                    mac.update(chunk)
                    content.update(chunk)
                    out.write(chunk)
                stored_mac = blob.read(MAC_BYTES)
        except sqlite3.Error as failure:
            self._recover(failure)
            target.unlink(missing_ok=True)
            return None
        finally:
            if began and self._connection is not None and self._connection.in_transaction:
                self._connection.commit()  # ends the read
        if not hmac.compare_digest(mac.digest(), stored_mac):
            target.unlink()
            return None
        return content.hexdigest()

    def put_package(self, key: str, source: Path) -> None:
        """Store the package file at `source` with its MAC, streamed into its row (never whole in memory)."""
        self._used[PACKAGES].add(key)
        connection = self._open()
        if connection is None:
            return
        mac = hmac.new(user_key(), digestmod=hashlib.sha256)
        try:
            size = source.stat().st_size
            cursor = connection.execute(
                "INSERT OR REPLACE INTO blobs (kind, key, data) VALUES (?, ?, zeroblob(?))",
                (PACKAGES, key, size + MAC_BYTES),
            )
            assert cursor.lastrowid is not None
            with connection.blobopen("blobs", "data", cursor.lastrowid) as blob, open(source, "rb") as package:
                while chunk := package.read(min(STREAM_CHUNK, size - blob.tell())):
                    mac.update(chunk)
                    blob.write(chunk)
                blob.write(mac.digest())  # a file that shrank meanwhile leaves zeros before it: a miss, never wrong
        except sqlite3.Error as failure:
            self._recover(failure)
        except OSError:
            pass  # the file went away: a row left without its MAC is a miss, like any unsigned value

    def flush(self) -> None:
        """Commit everything stored since the last flush: one transaction (a failure only costs time)."""
        connection = self._connection
        if connection is not None and connection.in_transaction:
            try:
                connection.commit()
            except sqlite3.Error as failure:
                self._recover(failure)

    def prune(self) -> None:
        """Drop every card and package this build did not use, once such entries make up a fifth of the cache.

        Every edit leaves its card's old entry behind, and every new generator all
        of them; whatever wrote them (a build, a check, a failed build), they are
        counted here as the entries this build did not read or write. Another
        branch's cards cost a render when it comes back. Call it after `flush`, on
        a build that read every card: it runs in its own short transaction and
        gives up at once, changing nothing, when another build holds the database.
        """
        connection = self._open()
        if connection is None:
            return
        in_use = len(self._used[CARDS]) + len(self._used[PACKAGES])
        try:
            connection.execute(f"PRAGMA busy_timeout = {PRUNE_WAIT_MS}")
            query = "SELECT count(*) FROM blobs WHERE kind IN (?, ?)"
            (stored,) = connection.execute(query, (CARDS, PACKAGES)).fetchone()
            if stored - in_use <= PRUNE_SHARE * in_use + PRUNE_MINIMUM:
                return
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("CREATE TEMP TABLE IF NOT EXISTS used (kind TEXT, key TEXT, PRIMARY KEY (kind, key))")
            connection.execute("DELETE FROM temp.used")
            connection.executemany(
                "INSERT OR IGNORE INTO temp.used VALUES (?, ?)",
                [(kind, key) for kind, keys in self._used.items() for key in keys],
            )
            # What is kept is copied to a new table and the old one dropped: deleting the stale rows one by
            # one walks every value's overflow pages (10 s for 10,000 cards, against 0.1 s this way).
            connection.execute("DROP TABLE IF EXISTS kept")
            connection.execute(f"CREATE TABLE kept {COLUMNS}")
            connection.execute(
                "INSERT INTO kept SELECT kind, key, data FROM blobs WHERE kind NOT IN (?, ?)"
                " OR (kind, key) IN (SELECT kind, key FROM temp.used) ORDER BY kind, key",
                (CARDS, PACKAGES),
            )
            connection.execute("DROP TABLE blobs")
            connection.execute("ALTER TABLE kept RENAME TO blobs")
            connection.commit()
            free = connection.execute("PRAGMA freelist_count").fetchone()[0]
            if free * 2 > connection.execute("PRAGMA page_count").fetchone()[0]:
                connection.execute("VACUUM")  # give the space back: most of the file was stale entries
        except sqlite3.OperationalError:
            connection.rollback()  # busy (another build is writing): prune another time
        except sqlite3.Error as failure:
            self._recover(failure)
        finally:
            if self._connection is not None:
                self._connection.execute(f"PRAGMA busy_timeout = {int(LOCK_TIMEOUT_SECONDS * 1000)}")

    def _write(self, kind: str, key: str, data: bytes) -> None:
        # Straight into the open transaction (sqlite3 begins one before the first write): nothing piles up here.
        if kind in self._used:
            self._used[kind].add(key)
        connection = self._open()
        if connection is None:
            return
        try:
            connection.execute("INSERT OR REPLACE INTO blobs (kind, key, data) VALUES (?, ?, ?)", (kind, key, data))
        except sqlite3.Error as failure:
            self._recover(failure)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __getstate__(self) -> dict[str, Any]:
        # A worker process gets the folder only: a database connection must never cross a fork.
        return {"folder": self.folder}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["folder"])  # type: ignore[misc]  # the same fresh state as a new cache

    def _read(self, kind: str, key: str) -> bytes | None:
        if kind in self._used:
            self._used[kind].add(key)
        connection = self._open()
        if connection is None:
            return None
        try:
            row = connection.execute("SELECT data FROM blobs WHERE kind = ? AND key = ?", (kind, key)).fetchone()
        except sqlite3.Error as failure:
            self._recover(failure)
            return None
        return verified(row[0]) if row is not None and isinstance(row[0], bytes) else None

    def _read_many(self, kind: str, keys: list[str]) -> dict[str, bytes]:
        """The verified values of those keys that have one."""
        self._used[kind].update(keys)
        connection = self._open()
        found: dict[str, bytes] = {}
        if connection is None:
            return found
        try:
            for start in range(0, len(keys), READ_BATCH):
                batch = keys[start : start + READ_BATCH]
                marks = ",".join("?" * len(batch))
                query = f"SELECT key, data FROM blobs WHERE kind = ? AND key IN ({marks})"
                for key, stored in connection.execute(query, (kind, *batch)):
                    value = verified(stored) if isinstance(stored, bytes) else None
                    if value is not None:
                        found[key] = value
        except sqlite3.Error as failure:
            self._recover(failure)
            return {}
        return found

    def trouble(self) -> str | None:
        """Why this cache can serve nothing (every card is rendered), or None when it works as it should."""
        problem = key_problem()
        if problem is None and _inside(key_path(), self.folder):
            problem = f"the signing key {key_path()} lies inside this cache folder"
        return None if problem is None else f"the render cache is off: {problem}"

    def _open(self) -> sqlite3.Connection | None:
        if self._connection is not None or self._broken:
            return self._connection
        if self.trouble() is not None:
            self._broken = True  # entries signed with a passing key, or one that travels with them, prove nothing
            return None
        for attempt in range(2):
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                if not self.database.exists():
                    for old in OLD_DATABASE_FILES:
                        with contextlib.suppress(OSError):
                            os.unlink(self.folder / old)
                connection = sqlite3.connect(self.database, timeout=LOCK_TIMEOUT_SECONDS)
                connection.execute(SCHEMA)
                connection.execute("SELECT count(*) FROM blobs WHERE kind = ''").fetchone()
            except (sqlite3.Error, OSError):
                if attempt == 0:
                    self._discard()  # unreadable (a truncated file, say): derived data, so start afresh
                continue
            self._connection = connection
            return connection
        self._broken = True
        return None

    def _recover(self, failure: sqlite3.Error) -> None:
        """After a failed read or write: close; a corrupt file (not merely a busy one) is removed."""
        self.close()
        if not isinstance(failure, sqlite3.OperationalError):
            self._discard()

    def _discard(self) -> None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.unlink(f"{self.database}{suffix}")


def encode_entry(card: RenderedCard | None, diagnostics: tuple[Diagnostic, ...]) -> bytes | None:
    """A compiled card as a signed cache entry; None for a card with errors (never cached)."""
    if card is None or any(d.severity == "error" for d in diagnostics):
        return None
    return sign(json.dumps(_encode(card, diagnostics), separators=(",", ":")).encode())


def _encode(rendered: RenderedCard, diagnostics: tuple[Diagnostic, ...]) -> dict[str, Any]:
    card = rendered.card
    return {
        "card": {
            "id": card.id, "topic": card.topic, "type": card.type, "tags": card.tags, "sources": card.sources,
            "previous_ids": card.previous_ids, "front": card.front, "back": card.back, "path": str(card.path),
            "id_line": card.id_line, "front_line": card.front_line, "back_line": card.back_line,
        },
        "fields": rendered.fields,
        "media": [[m.name, str(m.source), _stamp(m.source)] for m in rendered.media],
        "question_text": rendered.question_text,
        "card_count": rendered.card_count,
        "diagnostics": [
            [d.severity, str(d.location.path), d.location.line, d.location.col, d.message, d.hint]
            for d in diagnostics
        ],
    }  # fmt: skip


def _decode(entry: dict[str, Any], card_path: Path, keep_markdown: bool) -> tuple[RenderedCard, tuple[Diagnostic, ...]]:
    # Loaded here, not at import: an up-to-date build reads no card.
    from generator.cards.cloze import read_clozes
    from generator.cards.model import Card, MediaFile, RenderedCard, media_name

    raw = entry["card"]
    card = Card(
        id=raw["id"], topic=raw["topic"], type=raw["type"], tags=tuple(raw["tags"]), sources=tuple(raw["sources"]),
        previous_ids=tuple(raw["previous_ids"]), markdown=(raw["front"], raw["back"]) if keep_markdown else None,
        path=card_path,
        id_line=raw["id_line"], front_line=raw["front_line"], back_line=raw["back_line"],
        front_segments=None, back_segments=None, clozes=read_clozes(raw["front"]),
    )  # fmt: skip
    media = []
    for name, source, stamp in entry["media"]:
        if _stamp(Path(source)) != stamp:
            raise ValueError("an image changed since this entry was written")
        data = Path(source).read_bytes()
        if media_name(Path(source), data) != name:
            raise ValueError("an image changed since this entry was written")
        media.append(MediaFile(name, Path(source), data))
    diagnostics = tuple(
        Diagnostic(severity, Location(card_path if path == str(card_path) else Path(path), line, col), message, hint)
        for severity, path, line, col, message, hint in entry["diagnostics"]
    )
    rendered = RenderedCard(card, tuple(entry["fields"]), tuple(media), entry["question_text"], entry["card_count"])
    return rendered, diagnostics


def _index_name(content_root: Path) -> str:
    return hashlib.sha256(str(content_root).encode()).hexdigest()


def _stamp(path: Path) -> list[int]:
    try:
        status = path.stat()
    except OSError:
        return [-1, -1]
    return [status.st_size, status.st_mtime_ns]
