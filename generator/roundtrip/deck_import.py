"""Turn an existing Anki deck (`.apkg`) into Markdown cards of one topic.

The package is read by Anki's own importer into a scratch collection, so every
package format Anki reads works here. Basic, reversed and cloze notes become one
card file each; notes of other note types are listed, not imported. Each card keeps
its note's GUID (`guid:` in the front matter), so the build gives the note the same
GUID and users of the old deck keep their review history after switching.
HTML becomes Markdown through markdownify; math (`\\(...\\)`, `\\[...\\]`) is kept as
written, and images are copied into the topic's `figures/` folder.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from generator.roundtrip.push import MISSING_ANKI, PushError, database

FIGURES = "figures"
MATH = re.compile(r"\\\(.*?\\\)|\\\[.*?\\\]|\$\$.*?\$\$", re.DOTALL)
CLOZE_MARK = re.compile(r"\{\{c\d+::")
CLOZE_ANSWER = re.compile(r"\{\{c\d+::(.*?)(?:::[^}]*)?\}\}", re.DOTALL)
IMG_SRC = re.compile(r"""(<img\b[^>]*?\bsrc\s*=\s*)(["']?)([^"'\s>]+)\2""", re.IGNORECASE)
MISSING_MARKDOWNIFY = "'decks import' needs markdownify: pip install -e '.[import]'"


class ImportProblem(PushError):
    """An import that cannot go ahead."""


@dataclass
class ImportResult:
    written: list[Path] = field(default_factory=list)
    media: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "<note type>: <n> notes" not imported


@dataclass(frozen=True, slots=True)
class _Kind:
    card_type: str  # basic, reversed or cloze
    front: int  # field index
    back: int | None


def classify(notetype: dict[str, Any]) -> _Kind | None:
    """Basic, reversed or cloze, by the note type's templates; None for any other note type."""
    names = [f["name"] for f in notetype["flds"]]
    templates = notetype["tmpls"]

    def uses(text: str, name: str, cloze: bool = False) -> bool:
        return ("{{cloze:" + name + "}}" if cloze else "{{" + name + "}}") in text

    if notetype.get("type") == 1:
        if len(names) > 2 or not templates or not uses(templates[0]["qfmt"], names[0], cloze=True):
            return None
        return _Kind("cloze", 0, 1 if len(names) > 1 else None)
    if len(names) != 2:
        return None
    front, back = names
    first = templates[0] if templates else None
    if first is None or not uses(first["qfmt"], front) or not uses(first["afmt"], back):
        return None
    if len(templates) == 1:
        return _Kind("basic", 0, 1)
    second = templates[1]
    if len(templates) == 2 and uses(second["qfmt"], back) and uses(second["afmt"], front):
        return _Kind("reversed", 0, 1)
    return None


def import_deck(package: Path, content_dir: Path, topic: str) -> ImportResult:
    """Write one card per note of `package` into `content_dir/topic` (never overwriting a file)."""
    try:
        from anki.collection import Collection, ImportAnkiPackageOptions, ImportAnkiPackageRequest
    except ImportError:
        raise ImportProblem(MISSING_ANKI) from None
    try:
        import markdownify  # noqa: F401
    except ImportError:
        raise ImportProblem(MISSING_MARKDOWNIFY) from None
    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", topic):
        raise ImportProblem(f"invalid topic '{topic}': lower-case letters and digits, words joined by '-'")
    if not package.is_file():
        raise ImportProblem(f"no such package: {package}")
    folder = content_dir / topic
    result = ImportResult()
    with tempfile.TemporaryDirectory() as scratch:
        collection = Collection(str(Path(scratch) / "collection.anki2"))
        try:
            collection.import_anki_package(
                ImportAnkiPackageRequest(package_path=str(package.resolve()), options=ImportAnkiPackageOptions())
            )
            media_dir = Path(collection.media.dir())
            notes = database(collection).all("select id, guid, mid, flds, tags from notes order by id")
            notetypes = {m["id"]: m for m in collection.models.all()}
            deck_names = {
                nid: collection.decks.name(did)
                for nid, did in database(collection).all("select nid, min(did) from cards group by nid")
            }
        finally:
            collection.close()
        folder.mkdir(parents=True, exist_ok=True)
        _topic_file(folder, content_dir, deck_names, package)
        skipped: dict[str, int] = {}
        used_ids = {p.stem for p in folder.glob("*.md")}
        for note_id, guid, mid, flds, tags in notes:
            notetype = notetypes[mid]
            kind = classify(notetype)
            if kind is None:
                skipped[notetype["name"]] = skipped.get(notetype["name"], 0) + 1
                continue
            fields = flds.split("\x1f")
            front_html = fields[kind.front]
            back_html = fields[kind.back] if kind.back is not None and kind.back < len(fields) else ""
            front_html, back_html = (_copy_media(h, media_dir, folder, result) for h in (front_html, back_html))
            text = card_markdown(kind.card_type, front_html, back_html, guid, tags.split(), topic, note_id, used_ids)
            slug, body = text
            path = folder / f"{slug}.md"
            path.write_text(body, encoding="utf-8")
            result.written.append(path)
        result.skipped = [f"{name}: {count} notes" for name, count in sorted(skipped.items())]
    return result


def _topic_file(folder: Path, content_dir: Path, deck_names: dict[int, str], package: Path) -> None:
    config = folder / "topic.yaml"
    if config.exists():
        return
    name = (sorted(deck_names.values()) or [package.stem])[0].split("::")[-1]
    orders = []
    for other in content_dir.glob("*/topic.yaml"):
        try:
            orders.append(int(yaml.safe_load(other.read_text(encoding="utf-8")).get("order", 0)))
        except (OSError, ValueError, TypeError, AttributeError, yaml.YAMLError):
            continue
    data = {"name": name, "description": f"Imported from {package.name}.", "order": max(orders, default=-1) + 1}
    config.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def _copy_media(value: str, media_dir: Path, folder: Path, result: ImportResult) -> str:
    """Copy each referenced image into figures/ and point the reference there."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(3)
        source = media_dir / name
        if "/" in name or "\\" in name or not source.is_file():
            return match.group(0)
        target = folder / FIGURES / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            result.media.append(target)
        quote = match.group(2) or '"'
        return f"{match.group(1)}{quote}{FIGURES}/{name}{quote}"

    return IMG_SRC.sub(replace, value)


def to_markdown(value: str) -> str:
    """Field HTML as Markdown; math and cloze markers survive unescaped."""
    from markdownify import markdownify

    kept: list[str] = []

    def keep(match: re.Match[str]) -> str:
        kept.append(match.group(0))
        return f"MATHKEEP{len(kept) - 1}X"

    protected = MATH.sub(keep, value)
    text = markdownify(protected, heading_style="ATX", bullets="-", code_language="text", escape_misc=False)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    text = re.sub(r"MATHKEEP(\d+)X", lambda m: kept[int(m.group(1))], text)
    return "\n".join(line.rstrip() for line in text.split("\n"))


def card_markdown(
    card_type: str,
    front_html: str,
    back_html: str,
    guid: str,
    tags: list[str],
    topic: str,
    note_id: int,
    used_ids: set[str],
) -> tuple[str, str]:
    """(file stem, file text) of one imported card."""
    front = to_markdown(front_html)
    back = to_markdown(back_html)
    if card_type == "cloze":
        plain = CLOZE_ANSWER.sub("…", front)
        title = _one_line(plain) or "Cloze"
        heading, rest = _shorten(title, 70), front
    else:
        first, _, more = front.partition("\n")
        heading, rest = _one_line(first) or "Question", more.strip()
    slug = _unique(_slug(heading) or f"note-{note_id}", used_ids)
    clean_tags = sorted({t for t in (_tag(tag) for tag in tags) if t and t not in ("marked", "leech")})
    lines = [f"id: {topic}-{slug}", f"tags: [{', '.join(clean_tags)}]"]
    if card_type != "basic":
        lines.append(f"type: {card_type}")
    lines.append(f"guid: {json.dumps(guid, ensure_ascii=False)}")  # a JSON string is a YAML double-quoted one
    header = "---\n" + "\n".join(lines) + "\n"
    if card_type == "cloze":
        body = f"# {heading}\n\n{rest}\n" + (f"%\n{back}\n" if back else "")
    elif rest:
        body = f"# {heading}\n{rest}\n%\n{back}\n"
    else:
        body = f"# {heading}\n\n{back}\n"
    return slug, header + "---\n" + body


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line.lstrip("#").strip()


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def _slug(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", CLOZE_ANSWER.sub(" ", text).casefold())
    return "-".join(words[:8])[:60].strip("-")


def _unique(slug: str, used: set[str]) -> str:
    candidate, number = slug, 2
    while candidate in used:
        candidate, number = f"{slug}-{number}", number + 1
    used.add(candidate)
    return candidate


def _tag(tag: str) -> str:
    cleaned = re.sub(r"[^a-z0-9_.+:-]+", "-", tag.casefold()).strip("-")
    parts = [p.strip("-_.+") for p in cleaned.split("::")]
    return "::".join(p for p in parts if p)
