"""`decks stats`: what the content holds, by topic and type, and how long the answers are.

Counts come from the validated cards (files with errors are counted as
skipped); code blocks, formulas and tables are found with the pipeline's own
scanner, and answer length is the word count the reader checks use.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator.cards.checks import answer_words
from generator.cards.load import load_content
from generator.cards.model import CARD_TYPES, Card
from generator.cards.parse import parse_card_file
from generator.cards.scan import Fence, Math, Prose, parse_fence_info
from generator.cards.validate import validate_file

# The row under a table's header: cells of dashes, optionally aligned with ':'.
TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)+\|?\s*$")


@dataclass(frozen=True, slots=True)
class TopicCount:
    key: str
    name: str
    by_type: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_type.values())


@dataclass(frozen=True, slots=True)
class ContentStats:
    """Figures about the valid cards of a content folder."""

    topics: tuple[TopicCount, ...]
    anki_cards: int  # cards Anki makes: two per reversed note, one per deletion number of a cloze note
    skipped_files: int  # card files with errors, left out of every figure
    tags: dict[str, int]  # most used first
    code_blocks: dict[str, int]  # by language, most used first
    inline_formulas: int
    display_formulas: int
    tables: int
    answer_words: tuple[int, ...]  # per card, ascending

    @property
    def cards(self) -> int:
        return sum(topic.total for topic in self.topics)

    def answer_length(self) -> dict[str, float]:
        """Minimum, quartiles and maximum of the words on the back (code excluded)."""
        words = self.answer_words
        if not words:
            return {}
        q1, median, q3 = statistics.quantiles(words, n=4, method="inclusive") if len(words) > 1 else (words[0],) * 3
        return {"min": words[0], "q1": q1, "median": median, "q3": q3, "max": words[-1]}

    def as_json(self) -> dict[str, Any]:
        return {
            "cards": self.cards,
            "anki_cards": self.anki_cards,
            "skipped_files": self.skipped_files,
            "topics": [{"key": t.key, "name": t.name, **t.by_type, "total": t.total} for t in self.topics],
            "tags": self.tags,
            "code_blocks": {"total": sum(self.code_blocks.values()), "by_language": self.code_blocks},
            "formulas": {"inline": self.inline_formulas, "display": self.display_formulas},
            "tables": self.tables,
            "answer_words": self.answer_length(),
        }


def content_stats(content_dir: Path) -> ContentStats | None:
    """Count what `content_dir` holds; None when the content folder itself cannot be read."""
    content, _ = load_content(content_dir)
    if content is None:
        return None
    cards: list[Card] = []
    skipped = 0
    for source in content.files:
        assert source.text is not None  # every file is read when no known files are given
        parsed, _ = parse_card_file(source.path, source.text)
        card, _ = validate_file(parsed, source.topic) if parsed is not None else (None, [])
        if card is None:
            skipped += 1
        else:
            cards.append(card)
    topics = tuple(
        TopicCount(
            topic.key,
            topic.name,
            {kind: sum(c.topic == topic.key and c.type == kind for c in cards) for kind in CARD_TYPES},
        )
        for topic in content.deckset.topics
    )
    tags: Counter[str] = Counter(tag for card in cards for tag in card.tags)
    languages: Counter[str] = Counter()
    inline = display = tables = 0
    for card in cards:
        for segments in card.segments():
            for segment in segments:
                if isinstance(segment, Fence):
                    info, _ = parse_fence_info(segment.info)
                    languages[info.language if info else "?"] += 1
                elif isinstance(segment, Math):
                    display += segment.display
                    inline += not segment.display
                elif isinstance(segment, Prose):
                    tables += sum(bool(TABLE_SEPARATOR.match(row)) for row in segment.text.split("\n"))
    return ContentStats(
        topics=topics,
        anki_cards=sum(_anki_cards(card) for card in cards),
        skipped_files=skipped,
        tags=dict(sorted(tags.items(), key=lambda item: (-item[1], item[0]))),
        code_blocks=dict(sorted(languages.items(), key=lambda item: (-item[1], item[0]))),
        inline_formulas=inline,
        display_formulas=display,
        tables=tables,
        answer_words=tuple(sorted(answer_words(card) for card in cards)),
    )


def stats_text(stats: ContentStats) -> str:
    """A plain-text report: a table of topics and types, then one line per figure."""
    lines = [f"{stats.cards} cards in {len(stats.topics)} topics, making {stats.anki_cards} Anki cards"]
    if stats.skipped_files:
        lines[0] += f"; {stats.skipped_files} card files with errors left out (see 'decks check')"
    header = ["topic", *CARD_TYPES, "total"]
    rows = [[t.key, *(str(t.by_type[kind]) for kind in CARD_TYPES), str(t.total)] for t in stats.topics]
    totals = [sum(t.by_type[kind] for t in stats.topics) for kind in CARD_TYPES]
    rows.append(["total", *(str(n) for n in totals), str(stats.cards)])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines.append("")
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
    lines.append("")
    lines.append(f"tags ({len(stats.tags)}): " + ", ".join(f"{tag} {n}" for tag, n in stats.tags.items()))
    code = ", ".join(f"{language} {n}" for language, n in stats.code_blocks.items())
    lines.append(f"code blocks: {sum(stats.code_blocks.values())}" + (f" ({code})" if code else ""))
    lines.append(
        f"formulas: {stats.inline_formulas + stats.display_formulas} "
        f"({stats.inline_formulas} inline, {stats.display_formulas} display)"
    )
    lines.append(f"tables: {stats.tables}")
    length = stats.answer_length()
    if length:
        lines.append(
            "words on the back (code excluded): "
            f"min {length['min']:g}, 25% {length['q1']:g}, median {length['median']:g}, "
            f"75% {length['q3']:g}, max {length['max']:g}"
        )
    return "\n".join(lines)


def _anki_cards(card: Card) -> int:
    if card.type == "cloze":
        return len(card.clozes.ordinals)
    return 2 if card.type == "reversed" else 1
