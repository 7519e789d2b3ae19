"""Check parsed card files against the card schema and turn them into `Card`s."""

from __future__ import annotations

import difflib
import functools
import re

from pygments.lexers import get_all_lexers, get_lexer_by_name
from pygments.util import ClassNotFound

from generator.apkg.ids import imported_guid_id
from generator.cards.cloze import opens_deletion, read_clozes
from generator.cards.model import CARD_TYPES, Card, CardType
from generator.cards.parse import Entry, ParsedFile
from generator.cards.scan import (
    OUTPUT_LANGUAGE,
    RUNNABLE_LANGUAGE,
    Fence,
    Math,
    fence_language,
    fence_opening,
    find_fence_close,
    parse_fence_info,
    scan,
    without_blank_prose,
)
from generator.cards.tex import TEX_HINT, tex_problems
from generator.diagnostics import Diagnostic, Location, error

CARD_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
TAG = re.compile(r"^[a-z0-9][a-z0-9_.+-]*(::[a-z0-9][a-z0-9_.+-]*)*$")
# A seed item ('<seed file>#<item>'), or the card's own topic key for material
# beyond the seeds (written from expertise and the official documentation).
SOURCE = re.compile(r"^([\w.-]+#[\w-]+|[a-z0-9]+(-[a-z0-9]+)*)$")
FRONT_END = "%"
KNOWN_KEYS = ("id", "tags", "source", "type", "previous_ids", "guid")
MAX_ID_LENGTH = 80
# What `decks new` writes: a card still holding it must not ship.
PLACEHOLDER_QUESTION = "Your question?"
PLACEHOLDER_TEXTS = (
    "The answer: a direct sentence first, then at most a few bullets.",
    "A short definition (the reverse card asks for the term).",
    "The {{c1::hidden part}} of a fact worth remembering.",
    "Extra notes shown on the answer side.",
)
REQUIRED_KEYS = ("id", "tags")
FORBIDDEN_TAGS = ("marked", "leech")  # Anki strips them on import
MAX_CLOZE = 99  # card ids are spaced 100 apart per note
CLOZE_HINT = "write each deletion as {{c1::text}}, closed, and not inside another deletion"


def validate_file(parsed: ParsedFile, topic: str) -> tuple[Card | None, list[Diagnostic]]:
    """Check one parsed card file; return the card when it has no errors."""
    problems: list[Diagnostic] = []
    meta = parsed.meta
    for key, entry in meta.items():
        if key not in KNOWN_KEYS:
            close = difflib.get_close_matches(key, KNOWN_KEYS, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            problems.append(
                error(
                    _key_location(entry),
                    f"unknown front-matter key '{key}'",
                    f"{hint}allowed: {', '.join(KNOWN_KEYS)}",
                )
            )
    for key in REQUIRED_KEYS:
        if key not in meta:
            problems.append(error(parsed.meta_location, f"missing '{key}' in front matter", _REQUIRED_HINTS[key]))

    card_id = _check_id(meta.get("id"), problems)
    tags = _check_list(meta.get("tags"), "tags", TAG, "lower-case words, '-', '_' or '::'", problems)
    for tag in tags:
        if tag in FORBIDDEN_TAGS:
            problems.append(error(meta["tags"].location, f"tag '{tag}' is reserved by Anki", "use another tag"))
    sources = _check_list(meta.get("source"), "source", SOURCE, "'<seed file>#<item>' or the topic key", problems)
    for source in sources:
        if SOURCE.match(source) and "#" not in source and source != topic:
            problems.append(
                error(
                    meta["source"].location,
                    f"source '{source}' is neither a seed item nor this card's topic '{topic}'",
                    f"write '<seed file>#<item>', or '{topic}' for material beyond the seeds",
                )
            )
    card_type = _check_type(meta.get("type"), problems)
    previous_ids = _check_list(meta.get("previous_ids"), "previous_ids", CARD_ID, "a card id", problems)
    if card_id is not None and card_id in previous_ids:
        problems.append(error(meta["previous_ids"].location, "a card's previous_ids cannot hold its own id"))
    guid = meta.get("guid")  # an imported note's own GUID: its lineage starts there (see generator.apkg.ids)
    if guid is not None:
        if not isinstance(guid.value, str) or not guid.value.strip() or not guid.value.isprintable():
            problems.append(error(guid.location, "invalid guid", "keep the GUID 'decks import' wrote, quoted"))
        else:
            previous_ids = (imported_guid_id(guid.value), *previous_ids)

    split = _split_body(parsed, card_type or "basic", problems)
    if card_id is None or card_type is None or split is None or problems:
        return None, problems
    front, front_line, back, back_line, heading_col = split
    front_segments, front_problems = scan(front, parsed.path, front_line)
    back_segments, back_problems = scan(back, parsed.path, back_line)
    for text, line in ((front, front_line), (back, back_line)):
        template = next((t for t in (PLACEHOLDER_QUESTION, *PLACEHOLDER_TEXTS) if t in text), None)
        if template is not None:
            offset = text[: text.index(template)].count("\n")
            problems.append(
                error(
                    Location(parsed.path, line + offset, 1),
                    f"still the template text: '{template}'",
                    "replace it with the card's own question and answer",
                )
            )
    if problems:
        return None, problems
    card = Card(
        id=card_id,
        topic=topic,
        type=card_type,
        tags=tuple(sorted(set(tags))),
        sources=sources,
        previous_ids=previous_ids,
        markdown=(front, back),
        path=parsed.path,
        id_line=meta["id"].location.line,
        front_line=front_line,
        back_line=back_line,
        front_segments=front_segments,
        back_segments=back_segments,
        clozes=read_clozes(front),
        heading_col=heading_col,
    )
    problems.extend(front_problems + back_problems)
    problems.extend(_check_markup(card))
    return (None if problems else card), problems


_REQUIRED_HINTS = {
    "id": "add 'id: <topic>-<short-name>' (lower-case, '-' between words); it must never change afterwards",
    "tags": "add 'tags: [concept]' (an empty list '[]' is allowed)",
}


def _key_location(entry: Entry) -> Location:
    return Location(entry.location.path, entry.location.line, 1)


def _check_id(entry: Entry | None, problems: list[Diagnostic]) -> str | None:
    if entry is None:
        return None
    if not isinstance(entry.value, str) or not CARD_ID.match(entry.value) or len(entry.value) > MAX_ID_LENGTH:
        problems.append(
            error(
                entry.location,
                f"invalid id {entry.value!r}",
                f"use lower-case letters and digits, words joined by '-', at most {MAX_ID_LENGTH} characters, "
                "e.g. 'cnn-stride'",
            )
        )
        return None
    return entry.value


def _check_list(
    entry: Entry | None, key: str, pattern: re.Pattern[str], shape: str, problems: list[Diagnostic]
) -> tuple[str, ...]:
    if entry is None:
        return ()
    values = entry.value if isinstance(entry.value, tuple) else None
    if values is None:
        problems.append(error(entry.location, f"'{key}' must be a list", f"write '{key}: [a, b]'"))
        return ()
    for value in values:
        if not pattern.match(value):
            problems.append(error(entry.location, f"invalid {key} entry {value!r}", f"each entry is {shape}"))
    return values


def _check_type(entry: Entry | None, problems: list[Diagnostic]) -> CardType | None:
    if entry is None:
        return "basic"
    for card_type in CARD_TYPES:
        if entry.value == card_type:
            return card_type
    problems.append(error(entry.location, f"unknown card type {entry.value!r}", f"use one of: {', '.join(CARD_TYPES)}"))
    return None


def _split_body(
    parsed: ParsedFile, card_type: CardType, problems: list[Diagnostic]
) -> tuple[str, int, str, int, int] | None:
    """Cut the body into front and back: '# question', optional front lines up to '%', back."""
    lines = parsed.body.split("\n")
    start = next((i for i, line in enumerate(lines) if line.strip()), None)
    if start is None or not lines[start].startswith("# "):
        line = parsed.body_line + (start or 0)
        problems.append(
            error(
                Location(parsed.path, line, 1),
                "missing front: the body must start with a '# ' heading holding the question",
                "write '# Your question?' on the first line after the front matter",
            )
        )
        return None
    heading = lines[start][2:].strip()
    heading_col = 3 + len(lines[start][2:]) - len(lines[start][2:].lstrip())
    rest = lines[start + 1 :]
    separator = None
    offset = 0
    while offset < len(rest):  # the scanner's fence rule: a '%' inside any fence is code
        fence = fence_opening(rest[offset])
        if fence is not None:
            closing = find_fence_close(rest, offset + 1, fence)
            offset = len(rest) if closing is None else closing + 1
            continue
        if rest[offset].rstrip() == FRONT_END:
            separator = offset
            break
        offset += 1
    if separator is None:
        if card_type == "cloze":
            front_lines, back_lines = rest, []
        else:
            front_lines, back_lines = [], rest
    else:
        front_lines, back_lines = rest[:separator], rest[separator + 1 :]
    front = "\n".join([heading, *front_lines]).strip("\n")
    back = "\n".join(back_lines).strip("\n")
    front_line = parsed.body_line + start
    back_line = front_line + 1 + (0 if separator is None else separator + 1)
    back_line += _leading_blank_lines(back_lines)
    if not heading:
        problems.append(error(Location(parsed.path, front_line, 1), "the question heading is empty"))
    if card_type != "cloze" and not back:
        problems.append(
            error(
                Location(parsed.path, front_line, 1),
                "missing back: there is no answer after the question",
                "write the answer below the '# ' heading (or below the '%' line)",
            )
        )
    return front, front_line, back, back_line, heading_col


def _leading_blank_lines(lines: list[str]) -> int:
    count = 0
    for line in lines:
        if line.strip():
            break
        count += 1
    return count


def _check_markup(card: Card) -> list[Diagnostic]:
    """Check math balance, code fences and cloze deletions of both sides."""
    problems: list[Diagnostic] = []
    for segments in card.segments():
        significant = without_blank_prose(segments)
        for index, segment in enumerate(significant):
            if isinstance(segment, Math):
                problems.extend(_check_tex(segment))
            if not isinstance(segment, Fence):
                continue
            problems.extend(_check_fence(segment, card.type))
            before = significant[index - 1] if index else None
            if fence_language(segment) == OUTPUT_LANGUAGE and fence_language(before) != RUNNABLE_LANGUAGE:
                problems.append(
                    error(
                        segment.location,
                        "output block does not directly follow a python block, so it would never be checked",
                        "put the ```output block right after the ```python block whose output it shows",
                    )
                )
    clozes = card.clozes
    if card.type == "cloze":
        if clozes.problem is not None:
            problems.append(error(card.front_location(clozes.problem_offset), clozes.problem, CLOZE_HINT))
        elif not clozes.numbers:
            problems.append(
                error(
                    Location(card.path, card.front_line, 1),
                    "cloze card has no deletion",
                    "mark the hidden text as {{c1::text}}, or use 'type: basic'",
                )
            )
        elif max(clozes.numbers) > MAX_CLOZE or min(clozes.numbers) < 1:
            problems.append(error(Location(card.path, card.front_line, 1), f"cloze numbers must be c1..c{MAX_CLOZE}"))
        if opens_deletion(card.back):
            problems.append(
                error(
                    Location(card.path, card.back_line, 1),
                    "cloze deletion after the '%' line, where Anki shows it as plain text",
                    "move the deletion above the '%' line",
                )
            )
    elif clozes.numbers or opens_deletion(card.back):
        problems.append(
            error(
                Location(card.path, card.front_line, 1),
                "cloze deletion in a card that is not a cloze card",
                "add 'type: cloze' to the front matter",
            )
        )
    return problems


def _check_tex(math: Math) -> list[Diagnostic]:
    """Commands outside the TeX allow-list, each at its own line and column."""
    problems = []
    for offset, message in tex_problems(math.tex):
        before = math.tex[:offset]
        line = math.location.line + before.count("\n")
        if "\n" in before:
            col = offset - before.rfind("\n")
        else:
            col = math.location.col + math.opener + offset
        problems.append(error(Location(math.location.path, line, col), message, TEX_HINT))
    return problems


def _check_fence(fence: Fence, card_type: CardType) -> list[Diagnostic]:
    info, problem = parse_fence_info(fence.info)
    if info is None:
        return [
            error(
                fence.location,
                problem or "invalid code block",
                "name the language after the backticks, e.g. ```python (```text for plain text); "
                "to keep code from running write ```python no-run: <reason>",
            )
        ]
    if not _is_known_language(info.language):
        return [
            error(
                fence.location,
                f"unknown code language '{info.language}'",
                _did_you_mean(info.language) + "use a Pygments language name such as python, bash, text or output",
            )
        ]
    if card_type == "cloze" and opens_deletion(fence.code):
        return [error(fence.location, "cloze deletions inside code blocks are not supported", "use inline `code`")]
    return []


def _did_you_mean(language: str) -> str:
    close = difflib.get_close_matches(language.lower(), _lexer_aliases(), n=1)
    return f"did you mean '{close[0]}'? " if close else ""


@functools.cache
def _lexer_aliases() -> tuple[str, ...]:
    return tuple(sorted({alias for _, aliases, _, _ in get_all_lexers() for alias in aliases}))


@functools.lru_cache(maxsize=256)
def _is_known_language(language: str) -> bool:
    """Whether Pygments has a lexer of this name (looked up once per name: the lookup is slow)."""
    try:
        get_lexer_by_name(language)
    except ClassNotFound:
        return False
    return True
