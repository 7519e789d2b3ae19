"""Read the content tree: the deck set, its topic folders and their card files."""

from __future__ import annotations

import errno
import os
import re
import stat
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from generator.cards.model import DeckSet, Topic
from generator.cards.parse import Entry, read_yaml_mapping
from generator.diagnostics import Diagnostic, Location, display_path, error

DECKSET_FILE = "deckset.yaml"
TOPIC_FILE = "topic.yaml"
TOPIC_KEY = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
TOPIC_KEYS = ("name", "description", "order")
RESERVED_TOPIC_KEYS = ("all-topics",)  # file name of the package with every topic
ROOT_DOCUMENTS = ("README.md",)  # the card guide, not a card
CARD_SUFFIX = ".md"
MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdown", ".mkd")
ORDER = re.compile(r"^[0-9]{1,6}$")
# Limits that keep every later stage fast and shallow; a card is far below them.
MAX_FILE_BYTES = 200_000
MAX_LINES = 2_000
MAX_NAME_LENGTH = 100
CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)  # 0 where the system has none (Windows)
NON_BLOCKING = getattr(os, "O_NONBLOCK", 0)
BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation, no end at Ctrl-Z
# What open() with O_NOFOLLOW fails with on a symlink: Linux and macOS, FreeBSD, NetBSD.
SYMLINK_ERRNOS = frozenset(code for code in (errno.ELOOP, errno.EMLINK, getattr(errno, "EFTYPE", None)) if code)


FileSignature = tuple[int, int, int, int]  # size, mtime and ctime in ns, inode: what changes when a file does


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A card file's text, decoded and with normalised newlines.

    `text` is None for a file not read yet: one an earlier build recorded (`known` in `load_content`)
    and that is unchanged since, with `known_key` what that build recorded for it; or, with
    `read_cards=False`, one left for the caller to `read`, and `signature` its status when listed.
    A build also lets go of a compiled file's text and keeps its cache key as `known_key`.
    """

    path: Path
    topic: str
    text: str | None
    signature: FileSignature | None = None  # when it was read (None: read too recently to vouch for it)
    known_key: str | None = None

    def read(self) -> tuple[SourceFile | None, list[Diagnostic]]:
        """This file with its text (reading it now if it was not read)."""
        if self.text is not None:
            return self, []
        diagnostics: list[Diagnostic] = []
        text, signature = _read_text(self.path, self.path.parent.parent, diagnostics)  # <content>/<topic>/<card>
        if text is None:
            return None, diagnostics
        # Still the file that was recorded or listed (and not recent then): it can be recorded.
        return SourceFile(self.path, self.topic, text, signature if signature == self.signature else None), []


Known = Mapping[str, tuple[FileSignature, str]]  # by path: a file's signature when an earlier build read it, and a key


@dataclass(frozen=True, slots=True)
class Content:
    """Everything read from the content folder, before parsing the cards."""

    deckset: DeckSet
    files: tuple[SourceFile, ...]


def load_content(
    root: Path, known: Known | None = None, *, recent_after_ns: int = 0, read_cards: bool = True
) -> tuple[Content | None, list[Diagnostic]]:
    """Read `root`: deckset.yaml, every `<topic>/topic.yaml` and `<topic>/*.md`, in sorted order.

    Every file read must lie inside `root` after following symlinks: a symlink
    must never carry a file from elsewhere into a deck. A card file in `known`
    whose signature is unchanged is not read (see `SourceFile`). A file whose
    mtime or ctime is at or after `recent_after_ns` gets no signature: a second
    write within the file system's clock tick would leave it unchanged (the
    "racy git" problem). Without `read_cards`, no card file is read: each is listed for the caller to
    `SourceFile.read` (a build reads them while the first ones compile).
    """
    root = root.resolve()
    if not root.is_dir():
        return None, [error(Location(root), "content folder not found", "pass --content with the folder of topics")]
    diagnostics: list[Diagnostic] = []
    name, umbrella_description = _read_deckset(root, diagnostics)
    topics: list[Topic] = []
    files: list[SourceFile] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith((".", "_")):
            continue  # hidden folders, editor files and notes of the maintainers
        kind = _entry_kind(entry, root, diagnostics)
        if kind == "dir":
            topic = _read_topic(entry, root, diagnostics)
            if topic is not None:
                topics.append(topic)
                files.extend(_read_cards(entry, root, topic.key, diagnostics, known or {}, recent_after_ns, read_cards))
        elif kind == "file" and _is_markdown(entry) and entry.name not in ROOT_DOCUMENTS:
            diagnostics.append(
                error(Location(entry), "card file outside a topic folder is not built", "move it into a topic folder")
            )
    if name is None:
        for source in files:  # no build without a deck set, but every card file's own problems are told now
            if source.text is None and source.known_key is None:
                diagnostics.extend(source.read()[1])
        return None, diagnostics
    topics.sort(key=lambda topic: (topic.order, topic.key))
    _check_unique_topic_names(topics, diagnostics)
    deckset = DeckSet(name, tuple(topics), root / DECKSET_FILE, umbrella_description)
    return Content(deckset, tuple(files)), diagnostics


def _read_cards(
    folder: Path,
    root: Path,
    topic: str,
    diagnostics: list[Diagnostic],
    known: Known,
    recent_after_ns: int,
    read_cards: bool = True,
) -> list[SourceFile]:
    """The topic's `*.md` cards; Markdown files anywhere else in the folder are errors, not silently skipped."""
    files: list[SourceFile] = []
    for directory, subfolders, names in os.walk(folder):  # never follows symlinked folders
        here = Path(directory)
        for name in subfolders:
            if _is_markdown(here / name) and not name.startswith("."):
                diagnostics.append(error(Location(here / name), "expected a file, found a folder", "rename it"))
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and not _is_markdown(here / d))
        for name in sorted(names):
            path = here / name
            if name.startswith(".") or not _is_markdown(path):
                continue  # editor lock and swap files, images, topic.yaml
            if here != folder:
                diagnostics.append(
                    error(Location(path), "card in a subfolder is not built", f"move it to {display_path(folder)}/")
                )
            elif path.suffix != CARD_SUFFIX:
                diagnostics.append(
                    error(Location(path), f"card file must end in '{CARD_SUFFIX}'", f"rename it to {path.stem}.md")
                )
            elif (plain := _plain_file_signature(path)) is not None or _entry_kind(path, root, diagnostics) == "file":
                recorded = known.get(str(path))
                if recorded is not None and plain == recorded[0] and _settled(recorded[0], recent_after_ns):
                    files.append(SourceFile(path, topic, None, plain, recorded[1]))
                    continue
                if not read_cards:
                    listed = plain if plain is not None and _settled(plain, recent_after_ns) else None
                    files.append(SourceFile(path, topic, None, listed))
                    continue
                text, signature = _read_text(path, root, diagnostics)
                if text is not None:
                    settled = signature is not None and _settled(signature, recent_after_ns)
                    files.append(SourceFile(path, topic, text, signature if settled else None))
    return files


def _entry_kind(path: Path, root: Path, diagnostics: list[Diagnostic]) -> str | None:
    """'dir' or 'file' for an entry that resolves inside `root`; None (reported) otherwise."""
    target = _target_inside(path, root, diagnostics)
    if target is None:
        return None
    if target.is_dir():
        return "dir"
    if target.is_file():
        return "file"
    diagnostics.append(error(Location(path), "not a regular file or folder", "remove it"))
    return None


def _target_inside(path: Path, root: Path, diagnostics: list[Diagnostic]) -> Path | None:
    """What `path` resolves to, if that is inside `root`; None (reported) otherwise."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        diagnostics.append(
            error(Location(path), "broken or looping symlink", "point the link at a file inside the content folder")
        )
        return None
    if not target.is_relative_to(root):
        diagnostics.append(
            error(
                Location(path),
                f"symlink to {target}, outside the content folder",
                "copy the file into the content folder; files from elsewhere are never built",
            )
        )
        return None
    return target


def _is_markdown(path: Path) -> bool:
    return path.suffix.lower() in MARKDOWN_SUFFIXES


def _plain_file_signature(path: Path) -> FileSignature | None:
    """The signature of a regular file that is no symlink (inside the already checked folder it was found in)."""
    try:
        status = path.lstat()
    except OSError:
        return None
    return _signature(status) if stat.S_ISREG(status.st_mode) else None


def _signature(status: os.stat_result) -> FileSignature:
    return (status.st_size, status.st_mtime_ns, status.st_ctime_ns, status.st_ino)


def _settled(signature: FileSignature, recent_after_ns: int) -> bool:
    """Neither written nor touched (ctime: `cp -p` and `tar` set old mtimes) at or after `recent_after_ns`."""
    return max(signature[1], signature[2]) < recent_after_ns


def _read_text(path: Path, root: Path, diagnostics: list[Diagnostic]) -> tuple[str | None, FileSignature | None]:
    """The text of a file listed under `root` (None: reported why not) and its signature as it was read."""
    try:
        handle = _open_listed(path, root, diagnostics)
        if handle is None:
            return None, None
        with handle:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode):
                diagnostics.append(error(Location(path), "not a regular file or folder", "remove it"))
                return None, None
            if status.st_size > MAX_FILE_BYTES:
                message = f"file is larger than {MAX_FILE_BYTES // 1000} KB"
                diagnostics.append(error(Location(path), message, "split it into several cards"))
                return None, None
            data = handle.read()
    except IsADirectoryError:
        diagnostics.append(error(Location(path), "expected a file, found a folder", "rename or remove it"))
        return None, None
    except OSError as exc:
        diagnostics.append(error(Location(path), f"cannot read the file: {exc.strerror}", "check its permissions"))
        return None, None
    text = _checked_text(path, data, diagnostics)
    return text, _signature(status) if text is not None else None


def _open_listed(path: Path, root: Path, diagnostics: list[Diagnostic]) -> BinaryIO | None:
    """Open a file listed under `root` as it is now (a build may read a card file seconds after listing it).

    The file itself is opened without following a symlink, so one swapped in for it since cannot lead
    outside the content folder (the folders above it were checked when listed); a symlink is checked
    again, as at listing, and what it resolved to is opened, not the link. Non-blocking: a FIFO swapped in
    is refused, not waited on. None: reported; IsADirectoryError: it is a folder now.
    """
    if NO_FOLLOW:
        try:
            return _open_file(path, NO_FOLLOW)
        except OSError as failure:
            if failure.errno not in SYMLINK_ERRNOS:
                raise
    elif not os.path.islink(path):
        return _open_file(path, 0)  # no O_NOFOLLOW (Windows): a file as it was listed
    target = _target_inside(path, root, diagnostics)
    if target is None:
        return None
    if target.is_dir():
        raise IsADirectoryError(path)  # Windows refuses to open a folder with a less telling error
    return _open_file(target, NO_FOLLOW)  # the file checked, even if the link changes again now


def _open_file(path: Path, flags: int) -> BinaryIO:
    descriptor = os.open(path, os.O_RDONLY | NON_BLOCKING | BINARY | flags)
    try:
        return os.fdopen(descriptor, "rb")
    except BaseException:  # e.g. a folder, which fdopen refuses without closing what it was given
        os.close(descriptor)
        raise


def _checked_text(path: Path, data: bytes, diagnostics: list[Diagnostic]) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        diagnostics.append(
            error(_offset_location(path, data, exc.start), f"not valid UTF-8 ({exc.reason})", "save the file as UTF-8")
        )
        return None
    # Anki deletes lone CRs and NFC-normalises fields: do the same before hashing.
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    text = unicodedata.normalize("NFC", text)
    control = CONTROL_CHARACTER.search(text)
    if control is not None:
        diagnostics.append(
            error(
                _offset_location(path, text, control.start()),
                f"control character U+{ord(control.group()):04X} in the text",
                "delete it (only tabs and newlines are allowed)",
            )
        )
        return None
    if text.count("\n") >= MAX_LINES:
        diagnostics.append(error(Location(path), f"more than {MAX_LINES} lines", "split it into several cards"))
        return None
    return text


def _offset_location(path: Path, text: str | bytes, offset: int) -> Location:
    before = text[:offset] if isinstance(text, str) else text[:offset].decode("utf-8", "replace")
    return Location(path, before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1)


def _read_deckset(root: Path, diagnostics: list[Diagnostic]) -> tuple[str | None, str]:
    """The umbrella deck's name and (optional) description."""
    path = root / DECKSET_FILE
    if not path.exists():
        diagnostics.append(
            error(Location(path), f"missing {DECKSET_FILE}", "create it with 'name: <umbrella deck name>'")
        )
        return None, ""
    if _entry_kind(path, root, diagnostics) != "file":
        return None, ""
    meta = _read_mapping(path, root, diagnostics)
    if meta is None:
        return None, ""
    _reject_unknown(path, meta, ("name", "description"), diagnostics)
    name = _required_text(path, meta, "name", diagnostics)
    description = _required_text(path, meta, "description", diagnostics) if "description" in meta else ""
    if name is not None and (problem := _deck_name_problem(name)):
        diagnostics.append(error(meta["name"].location, f"umbrella deck name {problem}", "choose a plain, flat name"))
        return None, ""
    return name, description or ""


def _read_topic(folder: Path, root: Path, diagnostics: list[Diagnostic]) -> Topic | None:
    path = folder / TOPIC_FILE
    if not TOPIC_KEY.match(folder.name) or folder.name in RESERVED_TOPIC_KEYS:
        diagnostics.append(
            error(
                Location(folder),
                f"topic folder name '{folder.name}' is not allowed",
                "use lower-case words joined by '-', other than 'all-topics'",
            )
        )
        return None
    if not path.exists() and not path.is_symlink():
        diagnostics.append(
            error(Location(path), f"missing {TOPIC_FILE}", "create it with 'name:', 'description:' and 'order:'")
        )
        return None
    if _entry_kind(path, root, diagnostics) != "file":
        return None
    meta = _read_mapping(path, root, diagnostics)
    if meta is None:
        return None
    _reject_unknown(path, meta, TOPIC_KEYS, diagnostics)
    name = _required_text(path, meta, "name", diagnostics)
    description = _required_text(path, meta, "description", diagnostics)
    order_text = _required_text(path, meta, "order", diagnostics)
    order = None
    if order_text is not None:
        if ORDER.match(order_text):
            order = int(order_text)
        else:
            diagnostics.append(
                error(
                    meta["order"].location,
                    f"order must be a whole number of at most 6 digits, not '{order_text[:20]}'",
                    "e.g. 'order: 10'",
                )
            )
    if name is None or description is None or order is None:
        return None
    if problem := _deck_name_problem(name):
        diagnostics.append(error(meta["name"].location, f"topic name {problem}", "choose a plain, flat name"))
        return None
    return Topic(folder.name, name, description, order, path)


def _read_mapping(path: Path, root: Path, diagnostics: list[Diagnostic]) -> dict[str, Entry] | None:
    text, _signature = _read_text(path, root, diagnostics)
    if text is None:
        return None
    meta, problems = read_yaml_mapping(path, text)
    diagnostics.extend(problems)
    return meta


def _reject_unknown(
    path: Path, meta: dict[str, Entry], allowed: tuple[str, ...], diagnostics: list[Diagnostic]
) -> None:
    for key, entry in meta.items():
        if key not in allowed:
            diagnostics.append(
                error(
                    Location(path, entry.location.line, 1),
                    f"unknown key '{key}'",
                    f"allowed keys: {', '.join(allowed)}",
                )
            )


def _required_text(path: Path, meta: dict[str, Entry], key: str, diagnostics: list[Diagnostic]) -> str | None:
    entry = meta.get(key)
    if entry is None:
        diagnostics.append(error(Location(path), f"missing '{key}'", f"add a line '{key}: …'"))
        return None
    if not isinstance(entry.value, str) or not entry.value.strip():
        diagnostics.append(error(entry.location, f"'{key}' must be a non-empty text"))
        return None
    return entry.value.strip()


def _deck_name_problem(name: str) -> str | None:
    """Why a deck name (or the umbrella) cannot be used, or None."""
    if "::" in name:
        return "cannot contain '::' (Anki's subdeck separator)"
    if len(name) > MAX_NAME_LENGTH:
        return f"is longer than {MAX_NAME_LENGTH} characters"
    if any(char in name for char in '<>"') or CONTROL_CHARACTER.search(name) or "\t" in name:
        return 'cannot contain <, >, " or control characters'
    return None


def deck_name_key(name: str) -> str:
    """Anki matches deck names ignoring case, so names that differ only in case are one deck."""
    return unicodedata.normalize("NFC", name).casefold()


def _check_unique_topic_names(topics: list[Topic], diagnostics: list[Diagnostic]) -> None:
    seen: dict[str, Topic] = {}
    for topic in topics:
        key = deck_name_key(topic.name)
        if key in seen:
            diagnostics.append(
                error(
                    Location(topic.config_path, 1, 1),
                    f"topic name '{topic.name}' is also used by {display_path(seen[key].config_path)}",
                    "Anki matches deck names ignoring case: two such topics would share one deck; rename one",
                )
            )
        else:
            seen[key] = topic
