"""Cloze deletions read the way Anki reads them: as a tree with hints, and as the cards they make.

`{{cN::text}}` or `{{cN::text::hint}}`: Anki ends a deletion at the first `}}`
after it opens, takes the text after the first `::` of a deletion as its hint,
and keeps a `}}` outside any deletion as text. `read_clozes` is the one reading:
validation, the reader checks, rendering and statistics take it from the
`Card`, and the preview and the build's last gate apply it to the finished field
(what Anki itself will read).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MARKER = re.compile(r"\{\{c(\d+)::|\}\}")
OPENING = re.compile(r"\{\{c\d+::")
HINT_SEPARATOR = "::"


@dataclass(frozen=True, slots=True)
class Cloze:
    """One deletion: its number, its content (text and nested deletions) and its hint."""

    ordinal: int
    start: int  # offset of the opening '{{' in the read text
    end: int  # offset just after the closing '}}'
    nodes: tuple[Node, ...]
    hint: str | None

    def revealed(self) -> str:
        """The content as the answer side shows it: nested deletions revealed, no hints."""
        parts: list[str] = []
        stack: list[Node] = list(reversed(self.nodes))  # no recursion: nesting depth is the author's
        while stack:
            node = stack.pop()
            if isinstance(node, str):
                parts.append(node)
            else:
                stack.extend(reversed(node.nodes))
        return "".join(parts)


Node = str | Cloze


@dataclass(frozen=True, slots=True)
class ClozeReading:
    """A text read for deletions: its tree, the cards it makes, and what is wrong with it."""

    nodes: tuple[Node, ...]  # plain text and (closed) deletions, in reading order
    numbers: tuple[int, ...]  # the number of every opening marker, closed or not, in reading order
    ordinals: tuple[int, ...]  # the deletion numbers Anki makes a card for, ascending
    problem: str | None = None  # a deletion nested in another, or one never closed
    problem_offset: int = 0  # where that deletion opens

    @property
    def deletions(self) -> tuple[Cloze, ...]:
        """Every deletion, nested ones included, in reading order."""
        return deletions(self.nodes)


@dataclass(slots=True)
class _Open:
    """A deletion whose closing `}}` has not been read yet."""

    ordinal: int
    start: int
    nodes: list[Node] = field(default_factory=list)
    hint: str | None = None


def read_clozes(text: str) -> ClozeReading:
    """Read `text` once: an unclosed deletion and everything after it stay plain text, as in Anki.

    The problem names the first deletion opened inside another (older Anki
    versions show it as broken text, and each card should hide one thing), or
    else the first one never closed.
    """
    if MARKER.search(text) is None:  # the usual case: no marker at all, so the text is one plain piece
        return ClozeReading((text,) if text else (), (), ())
    return _read_markers(text)


def _read_markers(text: str) -> ClozeReading:
    output: list[Node] = []
    stack: list[_Open] = []
    numbers: list[int] = []
    nested: _Open | None = None

    def add_text(piece: str) -> None:
        if not piece:
            return
        if not stack:
            output.append(piece)
            return
        innermost = stack[-1]
        if innermost.hint is None and HINT_SEPARATOR in piece:
            piece, innermost.hint = piece.split(HINT_SEPARATOR, 1)
        innermost.nodes.append(piece)

    position = 0
    for marker in MARKER.finditer(text):
        add_text(text[position : marker.start()])
        position = marker.end()
        if marker.group(1) is not None:
            opened = _Open(int(marker.group(1)), marker.start())
            if stack and nested is None:
                nested = opened
            numbers.append(opened.ordinal)
            stack.append(opened)
        elif stack:
            closing = stack.pop()
            closed = Cloze(closing.ordinal, closing.start, marker.end(), tuple(closing.nodes), closing.hint)
            (stack[-1].nodes if stack else output).append(closed)
        else:
            add_text(marker.group())
    add_text(text[position:])
    problem, offset = None, 0
    if nested is not None:
        problem, offset = f"cloze deletion {{{{c{nested.ordinal}::…}}}} is nested inside another", nested.start
    elif stack:
        problem, offset = f"cloze deletion {{{{c{stack[0].ordinal}::…}}}} is never closed with '}}}}'", stack[0].start
    if stack:
        # Never closed: the outermost one and everything after it are text. Nothing reached
        # `output` while it was open, so `output` holds exactly what came before it.
        output.append(text[stack[0].start :])
    nodes = tuple(output)
    ordinals = tuple(sorted({cloze.ordinal for cloze in deletions(nodes)}))
    return ClozeReading(nodes, tuple(numbers), ordinals, problem, offset)


def deletions(nodes: tuple[Node, ...]) -> tuple[Cloze, ...]:
    """Every deletion, nested ones included, in reading order."""
    found: list[Cloze] = []
    stack: list[Node] = list(reversed(nodes))
    while stack:
        node = stack.pop()
        if isinstance(node, Cloze):
            found.append(node)
            stack.extend(reversed(node.nodes))
    return tuple(found)


def opens_deletion(text: str) -> bool:
    """Whether `text` holds a deletion's opening marker (where none may be: code, the back, a basic card)."""
    return OPENING.search(text) is not None
