"""Reader checks: what makes a valid card hard to read on a reviewer's screen.

They give warnings, never errors (`--strict` makes them fatal): a code line
wider than a phone screen, a cloze whose answer is printed elsewhere on the
same side, a list or table that Markdown runs into the paragraph above it,
an answer too long to recall.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from generator.cloze import Cloze, deletions, parse_clozes
from generator.diagnostics import Diagnostic, Location, warning
from generator.model import Card
from generator.scan import Fence, Math, Prose, Segment

MAX_CODE_LINE = 80  # characters; wider lines scroll sideways on a phone
MAX_BACK_WORDS = 150  # words of prose and formulas, code excluded
TAB_WIDTH = 8  # how browsers show a tab in <pre>
HEADING_PREFIX = 2  # the '# ' cut off the question line of `Card.front`
LIST_ITEM = re.compile(r"^ {0,3}(?:[-*+]|\d+\.)[ \t]+\S")
TABLE_ROW = re.compile(r"^ {0,3}\|")
HEADING = re.compile(r"^ {0,3}#")  # a block of one line: whatever follows starts afresh
OTHER_BLOCK = re.compile(r"^ {0,3}[><]")  # quotes and raw HTML, left to Markdown
WORD = re.compile(r"\S*[^\W_]\S*")  # a run of non-space holding a letter or digit


@dataclass(frozen=True, slots=True)
class _Side:
    """One side's Markdown and where it starts in the file."""

    text: str
    first_line: int
    first_col: int  # column of the text's first character on its first line


def reader_checks(
    card: Card, *, max_code_line: int = MAX_CODE_LINE, max_back_words: int = MAX_BACK_WORDS
) -> list[Diagnostic]:
    """Warnings about how `card` will read; a pure function of the card."""
    problems: list[Diagnostic] = []
    for side, segments in zip(_sides(card), (card.front_segments, card.back_segments), strict=False):
        problems.extend(_long_code_lines(segments, max_code_line))
        problems.extend(_run_on_blocks(card, side, segments))
    if card.type == "cloze":
        problems.extend(_giveaway_deletions(card))
    words = answer_words(card)
    if words > max_back_words:
        problems.append(
            warning(
                Location(card.path, card.back_line, 1),
                f"the answer is {words} words long (over {max_back_words}, code excluded)",
                "keep what must be recalled short: cut it down, or split it into several cards",
            )
        )
    return problems


def answer_words(card: Card) -> int:
    """Words on the back: prose words, plus one per formula; code blocks do not count."""
    count = 0
    for segment in card.back_segments:
        if isinstance(segment, Prose):
            count += len(WORD.findall(segment.text))
        elif isinstance(segment, Math):
            count += 1
    return count


def _sides(card: Card) -> list[_Side]:
    sides = [_Side(card.front, card.front_line, HEADING_PREFIX + 1)]
    if card.back:
        sides.append(_Side(card.back, card.back_line, 1))
    return sides


def _long_code_lines(segments: tuple[Segment, ...], limit: int) -> list[Diagnostic]:
    problems = []
    for segment in segments:
        if not isinstance(segment, Fence):
            continue
        for offset, line in enumerate(segment.code.split("\n")):
            width = len(line.expandtabs(TAB_WIDTH))
            if width > limit:
                location = segment.location
                problems.append(
                    warning(
                        Location(location.path, location.line + 1 + offset, len(segment.indent) + limit + 1),
                        f"code line is {width} characters long (over {limit})",
                        f"break it within {limit} characters (inside brackets, or with a shorter name); "
                        "wider lines scroll sideways on a phone",
                    )
                )
    return problems


def _run_on_blocks(card: Card, side: _Side, segments: tuple[Segment, ...]) -> list[Diagnostic]:
    """A list or table needs a blank line above it, or Markdown joins it to the paragraph."""
    lines = side.text.split("\n")
    skipped = _code_and_math_lines(lines, side.first_line, segments)
    problems = []
    block: str | None = None  # 'paragraph', 'list', 'table', 'other', or None between blocks
    for index, line in enumerate(lines):
        if index in skipped.code or not line.strip() or HEADING.match(line):
            block = None
            continue
        if index in skipped.math:
            block = block or "paragraph"
            continue
        kind = "list" if LIST_ITEM.match(line) else "table" if TABLE_ROW.match(line) else None
        if block is None:
            block = kind or ("other" if OTHER_BLOCK.match(line) else "paragraph")
        elif block == "paragraph" and kind is not None:
            column = len(line) - len(line.lstrip()) + (side.first_col if index == 0 else 1)
            problems.append(
                warning(
                    Location(card.path, side.first_line + index, column),
                    f"{'list' if kind == 'list' else 'table'} directly after a paragraph line is shown as run-on text",
                    f"put a blank line before the {'list' if kind == 'list' else 'table'}",
                )
            )
            block = "reported"
    return problems


@dataclass(frozen=True, slots=True)
class _SkippedLines:
    code: frozenset[int]  # fence lines (0-based, in the side's text): they end a block
    math: frozenset[int]  # lines inside a multi-line formula: part of the paragraph around it


def _code_and_math_lines(lines: list[str], first_line: int, segments: tuple[Segment, ...]) -> _SkippedLines:
    code: set[int] = set()
    math: set[int] = set()
    for segment in segments:
        start = segment.location.line - first_line if isinstance(segment, Fence | Math) else 0
        if isinstance(segment, Fence):
            body = segment.code.split("\n")
            # An empty body is no line at all when the closing fence follows at once.
            if segment.code == "" and start + 1 < len(lines) and lines[start + 1].strip():
                body = []
            code.update(range(start, start + len(body) + 2))
        elif isinstance(segment, Math):
            math.update(range(start + 1, start + 1 + segment.tex.count("\n")))
    return _SkippedLines(frozenset(code), frozenset(math))


def _giveaway_deletions(card: Card) -> list[Diagnostic]:
    """A deletion whose hidden text the same question side prints elsewhere gives itself away."""
    nodes = parse_clozes(card.front)
    problems = []
    reported: set[tuple[int, str]] = set()
    for cloze in deletions(nodes):
        hidden = cloze.revealed().strip()
        if not hidden or (cloze.ordinal, hidden) in reported:
            continue
        visible = _question_side_text(nodes, cloze.ordinal)
        if re.search(rf"(?<!\w){re.escape(hidden)}(?!\w)", visible):
            reported.add((cloze.ordinal, hidden))
            problems.append(
                warning(
                    _front_location(card, cloze.start),
                    f"the text hidden by c{cloze.ordinal}, '{hidden}', is shown elsewhere on the same side",
                    f"reword the other mention, or hide it with c{cloze.ordinal} as well",
                )
            )
    return problems


def _question_side_text(nodes: list[str | Cloze], active: int) -> str:
    """What the question side of cloze `active` shows: its deletions as hints, the rest revealed."""
    pieces = []
    for node in nodes:
        if isinstance(node, str):
            pieces.append(node)
        elif node.ordinal == active:
            pieces.append(f"\n[{node.hint}]\n" if node.hint else "\n")
        else:
            pieces.append(_question_side_text(node.nodes, active))
    return "".join(pieces)


def _front_location(card: Card, offset: int) -> Location:
    line = card.front.count("\n", 0, offset)
    col = offset - (card.front.rfind("\n", 0, offset) + 1) + 1
    return Location(card.path, card.front_line + line, col + (HEADING_PREFIX if line == 0 else 0))
