"""Cloze deletions read the way Anki reads them: as a tree with hints, and as the cards they make.

`{{cN::text}}` or `{{cN::text::hint}}`: Anki ends a deletion at the first `}}`
after it opens, takes the text after the first `::` of a deletion as its hint,
and keeps a `}}` outside any deletion as text. The build counts a note's cards,
the reader checks look at hidden text and the preview renders cloze cards, all
from this one reading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MARKER = re.compile(r"\{\{c(\d+)::|\}\}")
HINT_SEPARATOR = "::"


@dataclass(slots=True)
class Cloze:
    """One deletion: its number, its content (text and nested deletions) and its hint."""

    ordinal: int
    start: int  # offset of the opening '{{' in the parsed text
    end: int = -1  # offset just after the closing '}}'
    nodes: list[str | Cloze] = field(default_factory=list)
    hint: str | None = None

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


def parse_clozes(text: str) -> list[Node]:
    """Split `text` into plain text and deletions; an unclosed deletion stays plain text."""
    output: list[Node] = []
    open_clozes: list[Cloze] = []

    def add_text(piece: str) -> None:
        if not piece:
            return
        if not open_clozes:
            output.append(piece)
            return
        innermost = open_clozes[-1]
        if innermost.hint is None and HINT_SEPARATOR in piece:
            piece, innermost.hint = piece.split(HINT_SEPARATOR, 1)
        innermost.nodes.append(piece)

    position = 0
    for marker in MARKER.finditer(text):
        add_text(text[position : marker.start()])
        position = marker.end()
        if marker.group(1) is not None:
            open_clozes.append(Cloze(int(marker.group(1)), marker.start()))
        elif open_clozes:
            closed = open_clozes.pop()
            closed.end = marker.end()
            (open_clozes[-1].nodes if open_clozes else output).append(closed)
        else:
            add_text(marker.group())
    add_text(text[position:])
    if open_clozes:
        # Never closed: the outermost one and everything after it are text.
        start = open_clozes[0].start
        return [*parse_clozes(text[:start]), text[start:]]
    return output


def deletions(nodes: list[Node]) -> list[Cloze]:
    """Every deletion, nested ones included, in reading order."""
    found: list[Cloze] = []
    stack: list[Node] = list(reversed(nodes))
    while stack:
        node = stack.pop()
        if isinstance(node, Cloze):
            found.append(node)
            stack.extend(reversed(node.nodes))
    return found


def ordinals(text: str) -> list[int]:
    """The deletion numbers used in `text`, ascending: one Anki card each."""
    return sorted({cloze.ordinal for cloze in deletions(parse_clozes(text))})


def cloze_ordinals(field: str) -> tuple[tuple[int, ...], str | None]:
    """The deletion numbers in a cloze field, in order, and a problem if the markers are unbalanced.

    Anki ends a deletion at the first `}}` and treats a `}}` outside any deletion
    as text. A deletion inside another is refused: older Anki versions show it
    as broken text, and each card should hide one thing.
    """
    ordinals: list[int] = []
    is_open = False
    for token in MARKER.finditer(field):
        if token.group(1) is not None:
            if is_open:
                return tuple(ordinals), f"cloze deletion {{{{c{token.group(1)}::…}}}} is nested inside another"
            ordinals.append(int(token.group(1)))
            is_open = True
        else:
            is_open = False
    if is_open:
        return tuple(ordinals), f"cloze deletion {{{{c{ordinals[-1]}::…}}}} is never closed with '}}}}'"
    return tuple(ordinals), None
