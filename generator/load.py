"""Read the content tree: the deck set, its topic folders and their card files."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from generator.diagnostics import Diagnostic, Location, error
from generator.model import DeckSet, Topic
from generator.parse import Entry, read_yaml_mapping

DECKSET_FILE = "deckset.yaml"
TOPIC_FILE = "topic.yaml"
TOPIC_KEY = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
TOPIC_KEYS = ("name", "description", "order")
RESERVED_TOPIC_KEYS = ("all-topics",)  # file name of the package with every topic


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A card file's text, decoded and with normalised newlines."""

    path: Path
    topic: str
    text: str


@dataclass(frozen=True, slots=True)
class Content:
    """Everything read from the content folder, before parsing the cards."""

    deckset: DeckSet
    files: tuple[SourceFile, ...]


def load_content(root: Path) -> tuple[Content | None, list[Diagnostic]]:
    """Read `root`: deckset.yaml, every `<topic>/topic.yaml` and `<topic>/*.md`, in sorted order."""
    root = root.resolve()
    if not root.is_dir():
        return None, [error(Location(root), "content folder not found", "pass --content with the folder of topics")]
    diagnostics: list[Diagnostic] = []
    name = _read_deckset_name(root / DECKSET_FILE, diagnostics)
    topics: list[Topic] = []
    files: list[SourceFile] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        topic = _read_topic(folder, diagnostics)
        if topic is None:
            continue
        topics.append(topic)
        for path in sorted(folder.glob("*.md")):
            text = _read_text(path, diagnostics)
            if text is not None:
                files.append(SourceFile(path, topic.key, text))
    if name is None:
        return None, diagnostics
    topics.sort(key=lambda topic: (topic.order, topic.key))
    _check_unique_topic_names(topics, diagnostics)
    return Content(DeckSet(name, tuple(topics), root / DECKSET_FILE), tuple(files)), diagnostics


def _read_text(path: Path, diagnostics: list[Diagnostic]) -> str | None:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        diagnostics.append(error(Location(path), f"not valid UTF-8 ({exc.reason})", "save the file as UTF-8"))
        return None
    # Anki deletes lone CRs and NFC-normalises fields: do the same before hashing.
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", text)


def _read_deckset_name(path: Path, diagnostics: list[Diagnostic]) -> str | None:
    if not path.is_file():
        diagnostics.append(
            error(Location(path), f"missing {DECKSET_FILE}", "create it with 'name: <umbrella deck name>'")
        )
        return None
    meta = _read_mapping(path, diagnostics)
    if meta is None:
        return None
    _reject_unknown(path, meta, ("name",), diagnostics)
    return _required_text(path, meta, "name", diagnostics)


def _read_topic(folder: Path, diagnostics: list[Diagnostic]) -> Topic | None:
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
    if not path.is_file():
        diagnostics.append(
            error(Location(path), f"missing {TOPIC_FILE}", "create it with 'name:', 'description:' and 'order:'")
        )
        return None
    meta = _read_mapping(path, diagnostics)
    if meta is None:
        return None
    _reject_unknown(path, meta, TOPIC_KEYS, diagnostics)
    name = _required_text(path, meta, "name", diagnostics)
    description = _required_text(path, meta, "description", diagnostics)
    order_text = _required_text(path, meta, "order", diagnostics)
    order = None
    if order_text is not None:
        if order_text.isdigit():
            order = int(order_text)
        else:
            diagnostics.append(
                error(meta["order"].location, f"order must be a whole number, not '{order_text}'", "e.g. 'order: 10'")
            )
    if name is None or description is None or order is None:
        return None
    if "::" in name:
        diagnostics.append(error(meta["name"].location, "a topic name cannot contain '::'", "choose a flat name"))
        return None
    return Topic(folder.name, name, description, order, path)


def _read_mapping(path: Path, diagnostics: list[Diagnostic]) -> dict[str, Entry] | None:
    text = _read_text(path, diagnostics)
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


def _check_unique_topic_names(topics: list[Topic], diagnostics: list[Diagnostic]) -> None:
    seen: dict[str, Topic] = {}
    for topic in topics:
        if topic.name in seen:
            diagnostics.append(
                error(
                    Location(topic.config_path, 1, 1),
                    f"topic name '{topic.name}' is also used by {seen[topic.name].config_path}",
                    "two topics with one name would share one deck: rename one",
                )
            )
        seen[topic.name] = topic
