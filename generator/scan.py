"""Split Markdown into prose, fenced code and math, so each is handled on its own.

Math and code must never reach Markdown's inline rules (emphasis, escapes), so
they are cut out first. Code spans stay inside the prose (Markdown handles them),
but are skipped so that a `$` inside backticks is not taken for math.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from generator.diagnostics import Diagnostic, Location, error

FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
NO_RUN = re.compile(r"^no-run:\s*(?P<reason>\S.*)$")
RUNNABLE_LANGUAGE = "python"  # blocks the test suite executes
OUTPUT_LANGUAGE = "output"  # the expected stdout of the python block before it
DOLLAR_HINT = r"write \$ for a literal dollar sign"


@dataclass(frozen=True, slots=True)
class Prose:
    """Markdown text, with code spans still in it."""

    text: str


@dataclass(frozen=True, slots=True)
class Math:
    """A TeX formula without its delimiters."""

    tex: str
    display: bool
    location: Location


@dataclass(frozen=True, slots=True)
class Fence:
    """A fenced code block."""

    info: str
    code: str
    indent: str
    location: Location


Segment = Prose | Math | Fence


@dataclass(frozen=True, slots=True)
class FenceInfo:
    """What a fence's info string says: a language, and why the code must not run."""

    language: str
    no_run: str | None


def parse_fence_info(info: str) -> tuple[FenceInfo | None, str | None]:
    """Read ' python no-run: reason'; return the info or a problem description."""
    language, _, rest = info.strip().partition(" ")
    rest = rest.strip()
    if not language:
        return None, "code block has no language"
    if not rest:
        return FenceInfo(language, None), None
    match = NO_RUN.match(rest)
    if match is None:
        return None, f"unexpected text after the language: '{rest}'"
    return FenceInfo(language, match.group("reason").strip()), None


def fence_language(segment: Segment | None) -> str | None:
    """The language of a fenced block (None for prose, math or a malformed fence)."""
    if not isinstance(segment, Fence):
        return None
    info, _ = parse_fence_info(segment.info)
    return info.language if info else None


def without_blank_prose(segments: tuple[Segment, ...]) -> list[Segment]:
    """Drop whitespace-only prose, so "the block right after a code block" is the next item."""
    return [s for s in segments if not (isinstance(s, Prose) and not s.text.strip())]


def scan(text: str, path: Path, first_line: int) -> tuple[tuple[Segment, ...], list[Diagnostic]]:
    """Cut `text` into segments; `first_line` is the file line `text` starts on."""
    lines = text.split("\n")
    segments: list[Segment] = []
    diagnostics: list[Diagnostic] = []
    prose: list[str] = []
    prose_start = 0

    def flush_prose() -> None:
        if prose:
            found, problems = _scan_prose("\n".join(prose), path, first_line + prose_start)
            segments.extend(found)
            diagnostics.extend(problems)
        prose.clear()

    index = 0
    while index < len(lines):
        match = FENCE_OPEN.match(lines[index])
        if match is None or (match["fence"][0] == "`" and "`" in match["info"]):
            if not prose:
                prose_start = index
            prose.append(lines[index])
            index += 1
            continue
        flush_prose()
        fence = match["fence"]
        closing = _find_fence_close(lines, index + 1, fence)
        location = Location(path, first_line + index, len(match["indent"]) + 1)
        if closing is None:
            diagnostics.append(
                error(location, "code block is never closed", f"end it with a line that is exactly {fence}")
            )
            closing = len(lines)
        code = "\n".join(_dedent(line, match["indent"]) for line in lines[index + 1 : closing])
        segments.append(Fence(match["info"], code, match["indent"], location))
        index = closing + 1
    flush_prose()
    return tuple(segments), diagnostics


def _find_fence_close(lines: list[str], start: int, fence: str) -> int | None:
    for index in range(start, len(lines)):
        stripped = lines[index].strip()
        if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
            return index
    return None


def _dedent(line: str, indent: str) -> str:
    return line[len(indent) :] if line.startswith(indent) else line.lstrip()


def _scan_prose(text: str, path: Path, first_line: int) -> tuple[list[Segment], list[Diagnostic]]:
    segments: list[Segment] = []
    diagnostics: list[Diagnostic] = []
    buffer: list[str] = []

    def locate(position: int) -> Location:
        line = text.count("\n", 0, position)
        col = position - (text.rfind("\n", 0, position) + 1)
        return Location(path, first_line + line, col + 1)

    def emit_math(tex: str, display: bool, position: int) -> None:
        if buffer:
            segments.append(Prose("".join(buffer)))
            buffer.clear()
        segments.append(Math(tex, display, locate(position)))

    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n:
            following = text[i + 1]
            if following == "$":
                buffer.append("$")
                i += 2
            elif following in "([":
                closer = "\\)" if following == "(" else "\\]"
                end = text.find(closer, i + 2)
                if end == -1:
                    diagnostics.append(
                        error(locate(i), f"'\\{following}' is never closed", f"close the formula with '{closer}'")
                    )
                    buffer.append(text[i : i + 2])
                    i += 2
                else:
                    emit_math(text[i + 2 : end], following == "[", i)
                    i = end + 2
            elif following in ")]":
                opener = "\\(" if following == ")" else "\\["
                diagnostics.append(
                    error(locate(i), f"'\\{following}' has no matching '{opener}'", f"open the formula with '{opener}'")
                )
                buffer.append(text[i : i + 2])
                i += 2
            else:
                buffer.append(text[i : i + 2])
                i += 2
        elif char == "`":
            run = _run_length(text, i, "`")
            end = _find_backtick_run(text, i + run, run)
            stop = i + run if end is None else end + run
            buffer.append(text[i:stop])
            i = stop
        elif char == "$":
            if text.startswith("$$", i):
                end = text.find("$$", i + 2)
                if end == -1:
                    diagnostics.append(error(locate(i), "'$$' is never closed", "close the formula with '$$'"))
                    buffer.append("$$")
                    i += 2
                else:
                    emit_math(text[i + 2 : end], True, i)
                    i = end + 2
            else:
                end = _find_inline_dollar_close(text, i)
                if end is None:
                    diagnostics.append(error(locate(i), "'$' has no matching closing '$'", DOLLAR_HINT))
                    buffer.append("$")
                    i += 1
                else:
                    emit_math(text[i + 1 : end], False, i)
                    i = end + 1
        else:
            buffer.append(char)
            i += 1
    if buffer:
        segments.append(Prose("".join(buffer)))
    return segments, diagnostics


def _run_length(text: str, start: int, char: str) -> int:
    end = start
    while end < len(text) and text[end] == char:
        end += 1
    return end - start


def _find_backtick_run(text: str, start: int, length: int) -> int | None:
    """Find a run of exactly `length` backticks, as CommonMark code spans need."""
    i = start
    while i < len(text):
        if text[i] == "`":
            run = _run_length(text, i, "`")
            if run == length:
                return i
            i += run
        else:
            i += 1
    return None


def _find_inline_dollar_close(text: str, start: int) -> int | None:
    """Find the `$` closing inline math opened at `start` (Pandoc's rules).

    The opening `$` must be followed by a non-space, the closing one preceded by
    a non-space and not followed by a digit; math never spans a blank line.
    """
    if start + 1 >= len(text) or text[start + 1].isspace():
        return None
    paragraph_end = text.find("\n\n", start)
    limit = len(text) if paragraph_end == -1 else paragraph_end
    i = start + 1
    while i < limit:
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "$":
            before_ok = not text[i - 1].isspace()
            after_ok = i + 1 >= len(text) or not text[i + 1].isdigit()
            if before_ok and after_ok:
                return i
        i += 1
    return None
