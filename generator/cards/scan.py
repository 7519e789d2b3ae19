"""Split Markdown into prose, fenced code and math, so each is handled on its own.

Math and code must never reach Markdown's inline rules (emphasis, escapes), so
they are cut out first. Code spans stay inside the prose (Markdown handles them),
but are skipped so that a `$` inside backticks is not taken for math.
"""

from __future__ import annotations

import bisect
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
    location: Location  # of the opening delimiter
    opener: int = 1  # length of the opening delimiter: `$` is 1, `$$`, `\\(` and `\\[` are 2


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
    """Cut `text` into segments; `first_line` is the file line `text` starts on.

    Validation reads each side of a card once and keeps the segments on the
    `Card`; every later stage (reader checks, rendering, statistics, the code
    runner) takes them from there instead of reading the text again.
    """
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
        fence = fence_opening(lines[index])
        if fence is None:
            if not prose:
                prose_start = index
            prose.append(lines[index])
            index += 1
            continue
        flush_prose()
        match = FENCE_OPEN.match(lines[index])
        assert match is not None  # fence_opening matched it
        closing = find_fence_close(lines, index + 1, fence)
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


def fence_opening(line: str) -> str | None:
    """The fence a line opens (its run of backticks or tildes), or None: the one rule for fences."""
    match = FENCE_OPEN.match(line)
    if match is None or (match["fence"][0] == "`" and "`" in match["info"]):
        return None
    return match["fence"]


def find_fence_close(lines: list[str], start: int, fence: str) -> int | None:
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
    index = _DelimiterIndex(text)

    def locate(position: int) -> Location:
        line = text.count("\n", 0, position)
        col = position - (text.rfind("\n", 0, position) + 1)
        return Location(path, first_line + line, col + 1)

    def report(position: int, message: str, hint: str) -> None:
        if len(diagnostics) < MAX_PROBLEMS_PER_BLOCK:
            diagnostics.append(error(locate(position), message, hint))

    def emit_math(tex: str, display: bool, position: int, opener: int = 2) -> None:
        if buffer:
            segments.append(Prose("".join(buffer)))
            buffer.clear()
        segments.append(Math(tex, display, locate(position), opener))

    i, n = 0, len(text)
    while i < n:
        # Copy plain text up to the next character that can start something.
        special = _SPECIAL.search(text, i)
        stop = n if special is None else special.start()
        if stop > i:
            buffer.append(text[i:stop])
            i = stop
            continue
        char = text[i]
        if char == "\\" and i + 1 < n:
            following = text[i + 1]
            if following == "$":
                buffer.append("$")
                i += 2
            elif following in "([":
                closer = "\\)" if following == "(" else "\\]"
                end = index.next(closer, i + 2)
                if end == -1:
                    report(i, f"'\\{following}' is never closed", f"close the formula with '{closer}'")
                    buffer.append(text[i : i + 2])
                    i += 2
                else:
                    emit_math(text[i + 2 : end], following == "[", i)
                    i = end + 2
            elif following in ")]":
                opener = "\\(" if following == ")" else "\\["
                report(i, f"'\\{following}' has no matching '{opener}'", f"open the formula with '{opener}'")
                buffer.append(text[i : i + 2])
                i += 2
            else:
                buffer.append(text[i : i + 2])
                i += 2
        elif char == "`":
            run = _run_length(text, i, "`")
            closing = index.backtick_run(i + run, run)
            stop = i + run if closing is None else closing + run
            buffer.append(text[i:stop])
            i = stop
        elif char == "$":
            if text.startswith("$$", i):
                end = index.next("$$", i + 2)
                if end == -1:
                    report(i, "'$$' is never closed", "close the formula with '$$'")
                    buffer.append("$$")
                    i += 2
                else:
                    emit_math(text[i + 2 : end], True, i)
                    i = end + 2
            else:
                inline_end = index.inline_dollar_close(i)
                if inline_end is None:
                    report(i, "'$' has no matching closing '$'", DOLLAR_HINT)
                    buffer.append("$")
                    i += 1
                else:
                    emit_math(text[i + 1 : inline_end], False, i, opener=1)
                    i = inline_end + 1
        else:
            buffer.append(char)
            i += 1
    if buffer:
        segments.append(Prose("".join(buffer)))
    return segments, diagnostics


_SPECIAL = re.compile(r"[\\`$]")
MAX_PROBLEMS_PER_BLOCK = 20  # a runaway file gets a readable report, not thousands of lines


def _run_length(text: str, start: int, char: str) -> int:
    end = start
    while end < len(text) and text[end] == char:
        end += 1
    return end - start


class _DelimiterIndex:
    """Where closing delimiters are, computed once per text, so that scanning stays linear.

    Searching from every opener to the end of the text is quadratic on text
    full of unmatched `$`, `\\(` or backticks.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self._found: dict[str, int] = {}
        # Built on first use: most prose has no backtick or `$` at all.
        self._runs: dict[int, list[int]] | None = None
        self._dollar_closers: list[int] | None = None
        self._paragraph_ends: list[int] | None = None

    def next(self, needle: str, start: int) -> int:
        """Index of `needle` at or after `start`, or -1; each needle's search moves only forward."""
        found = self._found.get(needle)
        if found is None or (found != -1 and found < start):
            found = self.text.find(needle, start)
            self._found[needle] = found
        return found

    def backtick_run(self, start: int, length: int) -> int | None:
        """Start of the first run of exactly `length` backticks at or after `start` (CommonMark code spans)."""
        if self._runs is None:
            self._runs = {}
            for match in re.finditer(r"`+", self.text):
                self._runs.setdefault(len(match.group()), []).append(match.start())
        positions = self._runs.get(length, [])
        index = bisect.bisect_left(positions, start)
        return positions[index] if index < len(positions) else None

    def inline_dollar_close(self, start: int) -> int | None:
        """The `$` closing inline math opened at `start` (Pandoc's rules).

        The opening `$` must be followed by a non-space, the closing one preceded
        by a non-space and not followed by a digit; math never spans a blank line.
        """
        text = self.text
        if start + 1 >= len(text) or text[start + 1].isspace():
            return None
        if self._paragraph_ends is None or self._dollar_closers is None:
            self._paragraph_ends = [m.start() for m in re.finditer("\n\n", text)]
            # Candidate closers: an unescaped `$` after a non-space, not before a digit.
            self._dollar_closers = [
                p
                for p in (m.end() - 1 for m in re.finditer(r"(?<!\\)(?:\\\\)*\$", text))
                if p > 0 and not text[p - 1].isspace() and not (p + 1 < len(text) and text[p + 1].isdigit())
            ]
        ends = self._paragraph_ends
        paragraph = bisect.bisect_left(ends, start)
        limit = ends[paragraph] if paragraph < len(ends) else len(text)
        closers = self._dollar_closers
        index = bisect.bisect_right(closers, start)
        if index < len(closers) and closers[index] < limit:
            return closers[index]
        return None
