"""A per-card cache of compiled cards, so a rebuild renders only what changed.

The key hashes everything a card's compilation depends on: its path, topic
and text, the generator's own source code and the versions of the libraries
that render (Markdown, Pygments, the sanitiser, the YAML loader). Images are
read from disk, so an entry also records each image's size and mtime and is
used only while they still match. Entries are JSON written atomically, so two
builds can share a cache; an unreadable entry is a miss, never an error.
Cards with errors are not cached: what they point at may appear later.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from generator.diagnostics import Diagnostic, Location
from generator.load import SourceFile
from generator.model import Card, MediaFile, RenderedCard

CACHE_FORMAT = 1
DEPENDENCIES = ("markdown", "pygments", "nh3", "pyyaml", "genanki")
# The modules a card's compilation runs through (see generator.compile.compile_card).
COMPILE_MODULES = (
    "cache", "checks", "cloze", "compile", "diagnostics", "images", "load", "model", "parse", "render",
    "sanitize", "scan", "validate",
)  # fmt: skip


@cache
def environment_key() -> str:
    """Hash of the generator's code and the rendering libraries' versions."""
    digest = hashlib.sha256(f"format {CACHE_FORMAT}\n".encode())
    for name in DEPENDENCIES:
        try:
            digest.update(f"{name} {metadata.version(name)}\n".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{name} missing\n".encode())
    for module in COMPILE_MODULES:
        path = Path(__file__).with_name(f"{module}.py")
        digest.update(module.encode() + b"\0" + (path.read_bytes() if path.exists() else b""))
    return digest.hexdigest()


@cache
def package_environment_key() -> str:
    """Hash of what turns notes into a package: the packaging code and genanki's version."""
    digest = hashlib.sha256(f"format {CACHE_FORMAT}\n".encode())
    for module in ("package", "notetype", "ids"):
        digest.update(Path(__file__).with_name(f"{module}.py").read_bytes())
    digest.update(metadata.version("genanki").encode())
    return digest.hexdigest()


RACY_MARGIN_NS = 2_000_000_000  # file systems keep mtimes in coarse ticks: allow two seconds


FileStatus = tuple[str, os.stat_result]


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
            found.append((path, status))
    return found


def tree_fingerprint(tree: list[FileStatus], racy_after_ns: int) -> str | None:
    """Hash of every file's name, size, mtime and inode (from `tree_status`).

    A file modified at or after `racy_after_ns` is hashed by its bytes too: a
    second edit in the same clock tick would keep its size and mtime (the
    "racy git" problem). A later check passes the same instant, so any file
    changed since then is read, not trusted by its mtime.
    """
    digest = hashlib.sha256()
    for path, status in tree:
        digest.update(f"{path}\0{status.st_mode}\0{status.st_size}\0{status.st_mtime_ns}\0{status.st_ino}\n".encode())
        if status.st_mtime_ns >= racy_after_ns and stat.S_ISREG(status.st_mode):
            try:
                with open(path, "rb") as handle:
                    digest.update(hashlib.sha256(handle.read()).digest())
            except OSError:
                return None
    return digest.hexdigest()


class RenderCache:
    """Compiled cards on disk, one JSON file per card version."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def key(self, source: SourceFile) -> str:
        digest = hashlib.sha256(environment_key().encode())
        for part in (str(source.path), source.topic, source.text):
            digest.update(b"\0" + part.encode())
        return digest.hexdigest()

    def get(self, source: SourceFile) -> tuple[RenderedCard | None, tuple[Diagnostic, ...]] | None:
        key = self.key(source)
        try:
            # Plain strings and open(): path objects cost more than the read itself here.
            with open(os.path.join(self.folder, key[:2], key + ".json"), "rb") as handle:
                entry = json.loads(handle.read())
            if entry["card"]["path"] != str(source.path):
                return None
            return _decode(entry, source.path)
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            return None  # missing, corrupt or stale: compile again

    def put(self, source: SourceFile, card: RenderedCard | None, diagnostics: tuple[Diagnostic, ...]) -> None:
        if card is None or any(d.severity == "error" for d in diagnostics):
            return
        data = json.dumps(_encode(card, diagnostics), separators=(",", ":")).encode()
        _write_atomic(self._path(self.key(source)), data)

    def load_stamp(self, name: str) -> dict[str, Any] | None:
        """What the last successful build into a dist/ recorded (see `generator.build`)."""
        try:
            data = json.loads((self.folder / "stamps" / f"{name}.json").read_bytes())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def save_stamp(self, name: str, data: dict[str, Any]) -> None:
        _write_atomic(self.folder / "stamps" / f"{name}.json", json.dumps(data).encode())

    def get_package(self, key: str) -> bytes | None:
        """A package made before from the same inputs; its trailing SHA-256 proves it is whole."""
        try:
            stored = (self.folder / "packages" / f"{key}.apkg").read_bytes()
        except OSError:
            return None
        data, digest = stored[:-32], stored[-32:]
        return data if len(stored) > 32 and hashlib.sha256(data).digest() == digest else None

    def put_package(self, key: str, data: bytes) -> None:
        _write_atomic(self.folder / "packages" / f"{key}.apkg", data + hashlib.sha256(data).digest())

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"


def _write_atomic(path: Path, data: bytes) -> None:
    """Write so that a reader (another build) sees the old entry or the new one, never half."""
    temp = f"{path}.{os.getpid()}.tmp"  # one writer per process at a time
    try:
        try:
            handle = open(temp, "wb")
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(temp, "wb")
        with handle:
            handle.write(data)
        os.replace(temp, path)
    except OSError:
        return  # a cache that cannot be written only costs time


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


def _decode(entry: dict[str, Any], card_path: Path) -> tuple[RenderedCard, tuple[Diagnostic, ...]]:
    raw = entry["card"]
    card = Card(
        id=raw["id"], topic=raw["topic"], type=raw["type"], tags=tuple(raw["tags"]), sources=tuple(raw["sources"]),
        previous_ids=tuple(raw["previous_ids"]), front=raw["front"], back=raw["back"], path=card_path,
        id_line=raw["id_line"], front_line=raw["front_line"], back_line=raw["back_line"],
    )  # fmt: skip
    media = []
    for name, source, stamp in entry["media"]:
        if _stamp(Path(source)) != stamp:
            raise ValueError("an image changed since this entry was written")
        data = Path(source).read_bytes()
        if hashlib.sha1(data).hexdigest()[:12] not in name:
            raise ValueError("an image changed since this entry was written")
        media.append(MediaFile(name, Path(source), data))
    diagnostics = tuple(
        Diagnostic(severity, Location(card_path if path == str(card_path) else Path(path), line, col), message, hint)
        for severity, path, line, col, message, hint in entry["diagnostics"]
    )
    rendered = RenderedCard(card, tuple(entry["fields"]), tuple(media), entry["question_text"], entry["card_count"])
    return rendered, diagnostics


def _stamp(path: Path) -> list[int]:
    try:
        status = path.stat()
    except OSError:
        return [-1, -1]
    return [status.st_size, status.st_mtime_ns]
