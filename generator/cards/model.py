"""The immutable data that flows through the pipeline; no I/O, and only the naming rules of its values."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from generator.cards.cloze import ClozeReading
from generator.cards.scan import Segment, scan
from generator.diagnostics import Location

CardType = Literal["basic", "reversed", "cloze"]
CARD_TYPES: tuple[CardType, ...] = ("basic", "reversed", "cloze")
HEADING_PREFIX = 2  # the '# ' cut off the question line of `Card.front`


@dataclass(frozen=True, slots=True)
class Topic:
    """One topic folder: it becomes the deck '<umbrella>::<name>'."""

    key: str
    name: str
    description: str
    order: int
    config_path: Path


@dataclass(frozen=True, slots=True)
class DeckSet:
    """All topics under one umbrella deck name."""

    name: str
    topics: tuple[Topic, ...]
    config_path: Path
    description: str = ""  # shown on the umbrella deck

    def deck_name(self, topic: Topic) -> str:
        return f"{self.name}::{topic.name}"


@dataclass(frozen=True, slots=True)
class Card:
    """One validated card, as authored (Markdown, not yet HTML)."""

    id: str
    topic: str
    type: CardType
    tags: tuple[str, ...]
    sources: tuple[str, ...]
    previous_ids: tuple[str, ...]  # earlier ids of this note, oldest first (a declared rename)
    # The Markdown of both sides (front, back). None once a build has rendered the card and needs only its
    # fields (`without_markdown`): `front` and `back` then raise instead of reading as empty.
    markdown: tuple[str, str] | None
    path: Path
    id_line: int  # 1-based line of the `id:` key, for diagnostics about the card as a whole
    front_line: int  # 1-based line in the file where the front Markdown starts
    back_line: int
    # Each side read once, by the scanner: prose, math and fenced code, passed to every later stage (see
    # `segments`). None for a card read back from the cache: a build needs only its rendered fields.
    front_segments: tuple[Segment, ...] | None
    back_segments: tuple[Segment, ...] | None
    # The front read for cloze deletions once (every type: a deletion on a basic card is an error).
    clozes: ClozeReading
    heading_col: int = HEADING_PREFIX + 1  # 1-based column where the question starts, after '# ' and any spaces

    @property
    def front(self) -> str:
        """The question side's Markdown, from the text after '# ' on."""
        return self._side(0)

    @property
    def back(self) -> str:
        """The answer side's Markdown."""
        return self._side(1)

    def _side(self, index: int) -> str:
        if self.markdown is None:
            raise RuntimeError(f"{self.path}: this card was compiled for packaging, without its Markdown")
        return self.markdown[index]

    def without_markdown(self) -> Card:
        """This card as a build keeps it once rendered: the fields are made, the Markdown is not needed."""
        return replace(self, markdown=None, front_segments=None, back_segments=None)

    def segments(self) -> tuple[tuple[Segment, ...], tuple[Segment, ...]]:
        """Both sides' segments: as validation read them, or read now for a card from the cache."""
        if self.front_segments is not None and self.back_segments is not None:
            return self.front_segments, self.back_segments
        return scan(self.front, self.path, self.front_line)[0], scan(self.back, self.path, self.back_line)[0]

    def front_location(self, offset: int) -> Location:
        """The file position of an offset into `front` (whose first line is the heading's text)."""
        line = self.front.count("\n", 0, offset)
        col = offset - (self.front.rfind("\n", 0, offset) + 1) + 1
        return Location(self.path, self.front_line + line, col + (self.heading_col - 1 if line == 0 else 0))


@dataclass(frozen=True, slots=True)
class MediaFile:
    """An image referenced by a card, stored under a content-hashed name."""

    name: str
    source: Path
    data: bytes


@dataclass(frozen=True, slots=True)
class RenderedCard:
    """A card turned into the HTML fields of its note."""

    card: Card
    fields: tuple[str, ...]
    media: tuple[MediaFile, ...]
    question_text: str  # the front as plain text, for changelogs
    card_count: int  # the Anki cards this note makes (the field gate checks Anki reads as many from the fields)


def media_name(source: Path, data: bytes) -> str:
    """The packed name of an image: its stem and 128 bits of its content's SHA-256.

    Anki keeps one file per name in a collection's media folder, so two
    different images must never share a name; 128 bits make a collision
    infeasible to construct.
    """
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", source.stem).strip("-_") or "image"
    return f"{stem}-{hashlib.sha256(data).hexdigest()[:32]}{source.suffix.lower()}"
