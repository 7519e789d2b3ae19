"""Reader checks: what makes a valid card hard to read on a reviewer's screen.

They give warnings, never errors (`--strict` makes them fatal): a code line
wider than a phone screen, a cloze whose answer is printed elsewhere on the
same side, a list or table that Markdown runs into the paragraph above it,
an answer too long to recall, and content too wide for a phone.

Phone widths are estimated from characters, without a browser, against the
narrowest phone the decks are laid out for (360 px): the note type's CSS lets
code, tables and display formulas scroll inside their own box, so a wide one
is readable but costly; inline math cannot wrap, and a question side should
never need scrolling at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from generator.cards.cloze import Node
from generator.cards.model import Card
from generator.cards.scan import Fence, Math, Prose, Segment
from generator.diagnostics import Diagnostic, Location, warning

MAX_CODE_LINE = 80  # characters; wider lines scroll sideways on a phone
# Code on the question side must be read whole before answering: a line fits a
# 400 px screen at the note type's phone code size (0.8em of 19 px, 9.15 px a character).
MAX_QUESTION_CODE_LINE = 38
# The text column of a 360 px phone: the screen minus the card's 0.6em padding each side.
PHONE_TEXT_PX = 337.0
# A table or display formula may scroll in its own box by at most this share of the
# column: past it, more than half of the content is out of sight at any moment.
MAX_BOX_SCROLL = 1.0
BOX_CUE_PX = 22.8  # the right padding a scroll box keeps for its fade (1.2em)
PROSE_CHAR_PX = 10.0  # an average character of the 19 px sans-serif text, bold or not
CODE_CHAR_PX = 10.1  # a character of inline code (0.88em monospace)
CELL_PADDING_PX = 23.8  # 0.6em each side, plus a border
MATH_CHAR_PX = 12.0  # an average symbol of MathJax at 19 px, operator spacing included (fitted on the cards)
MAX_BACK_WORDS = 150  # words of prose and formulas, code excluded
TAB_WIDTH = 8  # how browsers show a tab in <pre>
LIST_ITEM = re.compile(r"^ {0,3}(?:[-*+]|\d+\.)[ \t]+\S")
TABLE_ROW = re.compile(r"^ {0,3}\|")
HEADING = re.compile(r"^ {0,3}#")  # a block of one line: whatever follows starts afresh
OTHER_BLOCK = re.compile(r"^ {0,3}[><]")  # quotes and raw HTML, left to Markdown
# A word is a run of non-space holding a letter or digit. Each is matched from its first letter or digit:
# as many matches as \S*[^\W_]\S*, without backing up over every word.
WORD = re.compile(r"[^\W_]\S*")


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
    for number, (side, segments) in enumerate(zip(_sides(card), card.segments(), strict=False)):
        question = number == 0
        if question:
            problems.extend(_long_code_lines(segments, min(max_code_line, MAX_QUESTION_CODE_LINE), question=True))
        else:
            problems.extend(_long_code_lines(segments, max_code_line))
        problems.extend(_run_on_blocks(card, side, segments))
        problems.extend(_wide_math(segments, question=question))
        problems.extend(_wide_tables(card, side, segments, question=question))
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
    for segment in card.segments()[1]:
        if isinstance(segment, Prose):
            count += len(WORD.findall(segment.text))
        elif isinstance(segment, Math):
            count += 1
    return count


def _sides(card: Card) -> list[_Side]:
    sides = [_Side(card.front, card.front_line, card.heading_col)]
    if card.back:
        sides.append(_Side(card.back, card.back_line, 1))
    return sides


def _long_code_lines(segments: tuple[Segment, ...], limit: int, *, question: bool = False) -> list[Diagnostic]:
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
                        f"code line is {width} characters long (over {limit}"
                        + (", the question side's phone budget)" if question else ")"),
                        f"break it within {limit} characters (inside brackets, or with a shorter name); "
                        + (
                            "the question must be read whole on a phone without scrolling"
                            if question
                            else "wider lines scroll sideways on a phone"
                        ),
                    )
                )
    return problems


def tex_width(tex: str) -> float:
    """Estimated width in px of a formula: its widest line, in symbols after dropping TeX markup."""
    return max(_tex_line_width(line) for line in re.split(r"\\\\(?:\[[^\]]*\])?", tex))


# Commands that draw nothing or only size, place or style what follows.
_INVISIBLE = re.compile(
    r"\\(?:left|right|middle|big|Big|bigg|Bigg)[lr]?\b|\\(?:begin|end)\{[^}]*\}(?:\{[^}]*\})?"
    r"|\\(?:displaystyle|textstyle|scriptstyle|limits|nolimits|mathrm|mathbf|mathit|mathcal|mathbb|boldsymbol"
    r"|operatorname|text|textbf|textit|texttt|mathsf|hat|bar|tilde|vec|dot|ddot|overline|underline|sqrt)\b"
    r"|\\[,;:! ]|\\q?quad\b|[{}&]"
)
_SCRIPT = re.compile(r"[_^](?:\{([^{}]*)\}|(\\[A-Za-z]+|.))")
_FRACTION = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_WORDS = re.compile(r"\\(?:text|mathrm|operatorname|textrm|textit)\s*\{([^{}]*)\}")
_COMMAND = re.compile(r"\\([A-Za-z]+)")
_NAMED_FUNCTIONS = frozenset("log ln exp sin cos tan tanh max min arg argmax argmin lim sup inf det softmax".split())
_SPACED = re.compile(r"[=<>+\-]|\\(?:cdot|times|approx|leq|geq|neq|to|in|sim|pm|odot|otimes)\b")


def _tex_line_width(tex: str) -> float:
    # A fraction is as wide as its wider part; scripts are set smaller.
    while (match := _FRACTION.search(tex)) is not None:
        wider = max(match.group(1), match.group(2), key=lambda part: _tex_line_width(part))
        tex = tex[: match.start()] + "{" + wider + "}" + tex[match.end() :]
    script = 0.0
    for match in _SCRIPT.finditer(tex):
        script += 0.7 * _tex_line_width(match.group(1) or match.group(2) or "")
    tex = _SCRIPT.sub("", tex)
    # Upright words (\text, \mathrm) are set narrower than italic symbols with their spacing.
    words = sum(len(match.group(1)) for match in _WORDS.finditer(tex)) * 0.75 * MATH_CHAR_PX
    tex = _WORDS.sub("", tex)
    spacing = len(_SPACED.findall(tex)) * 0.4  # the space MathJax puts around relations and operators
    tex = _INVISIBLE.sub("", tex)
    tex = _COMMAND.sub(lambda m: m.group(1) if m.group(1) in _NAMED_FUNCTIONS else "x", tex)
    symbols = len(re.sub(r"\s+", "", tex))
    return (symbols + spacing) * MATH_CHAR_PX + script + words


def _wide_math(segments: tuple[Segment, ...], *, question: bool) -> list[Diagnostic]:
    """Inline math never wraps; display math scrolls in its box, but not far, and never on a question."""
    problems = []
    box_limit = (PHONE_TEXT_PX - BOX_CUE_PX) * (1 + MAX_BOX_SCROLL)
    for segment in segments:
        if not isinstance(segment, Math):
            continue
        width = tex_width(segment.tex)
        if not segment.display and width > PHONE_TEXT_PX:
            problems.append(
                warning(
                    segment.location,
                    f"inline formula is about {width:.0f} px wide, wider than a phone's {PHONE_TEXT_PX:.0f} px line",
                    "inline math cannot wrap: make it display math ($$…$$), or split it at its = signs",
                )
            )
        elif segment.display and question and width > PHONE_TEXT_PX - BOX_CUE_PX:
            problems.append(
                warning(
                    segment.location,
                    f"display formula on the question side is about {width:.0f} px wide; "
                    f"a phone shows {PHONE_TEXT_PX - BOX_CUE_PX:.0f} px",
                    "a question must be read whole without scrolling: break it into lines (aligned, \\\\) "
                    "or shorten it",
                )
            )
        elif segment.display and width > box_limit:
            problems.append(
                warning(
                    segment.location,
                    f"display formula is about {width:.0f} px wide; it scrolls over "
                    f"{MAX_BOX_SCROLL:.0%} past a phone's {PHONE_TEXT_PX - BOX_CUE_PX:.0f} px",
                    "break it into lines (aligned with \\\\), put labels in the text rather than \\text "
                    "beside the equations, or move a worked sum into its own formula",
                )
            )
    return problems


_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_CELL_TOKEN = re.compile(r"`[^`]*`|\$[^$]*\$|\S+")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")


def table_width(rows: list[str]) -> float:
    """The narrowest width in px a Markdown table can take: per column, its longest unbreakable piece."""
    widest: dict[int, float] = {}
    for row in rows:
        cells = _CELL_SPLIT.split(_protect_code_pipes(row.strip()).strip("|"))
        if all(re.fullmatch(r"\s*:?-+:?\s*", cell) for cell in cells):
            continue  # the delimiter row
        for column, cell in enumerate(cells):
            widest[column] = max(widest.get(column, 0.0), _longest_piece(_LINK.sub(r"\1", cell)))
    return sum(widest.values()) + CELL_PADDING_PX * len(widest)


def _protect_code_pipes(row: str) -> str:
    """A `|` inside a code span does not split cells in Python-Markdown either way; keep it whole."""
    return re.sub(r"`[^`]*`", lambda m: m.group(0).replace("|", "/"), row)


def _longest_piece(cell: str) -> float:
    widest = 0.0
    for token in _CELL_TOKEN.findall(cell.replace("**", "").replace("\\|", "|")):
        if token.startswith("`"):
            # Inline code wraps at its spaces like prose.
            width = max((len(word) for word in token.strip("`").split()), default=0) * CODE_CHAR_PX
        elif token.startswith("$"):
            width = tex_width(token.strip("$"))
        else:
            width = len(token) * PROSE_CHAR_PX
        widest = max(widest, width)
    return widest


def _wide_tables(card: Card, side: _Side, segments: tuple[Segment, ...], *, question: bool) -> list[Diagnostic]:
    lines = side.text.split("\n")
    skipped = _code_and_math_lines(lines, side.first_line, segments)
    problems = []
    index = 0
    while index < len(lines):
        if index in skipped.code or not TABLE_ROW.match(lines[index]):
            index += 1
            continue
        start = index
        while index < len(lines) and index not in skipped.code and TABLE_ROW.match(lines[index]):
            index += 1
        width = table_width(lines[start:index])
        column = PHONE_TEXT_PX - BOX_CUE_PX
        limit = column if question else column * (1 + MAX_BOX_SCROLL)
        if width > limit:
            location = Location(card.path, side.first_line + start, 1)
            if question:
                message = f"table on the question side needs about {width:.0f} px; a phone shows {column:.0f} px"
            else:
                message = (
                    f"table needs about {width:.0f} px; it scrolls over {MAX_BOX_SCROLL:.0%} past "
                    f"a phone's {column:.0f} px"
                )
            problems.append(
                warning(
                    location,
                    message,
                    "split it into two tables or a list, drop a column, or shorten its longest words and code",
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
    """A deletion whose hidden text the same question side prints elsewhere gives itself away.

    Each deletion number's question side is built once, and each distinct hidden
    text is looked for once in it (a plain substring scan first, the word-bounded
    match only on a hit); validation has already refused nested deletions.
    """
    reading = card.clozes
    problems = []
    question_sides: dict[int, str] = {}
    looked_for: set[tuple[int, str]] = set()
    for cloze in reading.deletions:
        hidden = cloze.revealed().strip()
        if not hidden or (cloze.ordinal, hidden) in looked_for:
            continue
        looked_for.add((cloze.ordinal, hidden))
        visible = question_sides.get(cloze.ordinal)
        if visible is None:
            visible = question_sides[cloze.ordinal] = _question_side_text(reading.nodes, cloze.ordinal)
        shown = hidden in visible and re.search(rf"(?<!\w){re.escape(hidden)}(?!\w)", visible)
        if shown or _math_inside(hidden, visible):
            problems.append(
                warning(
                    card.front_location(cloze.start),
                    f"the text hidden by c{cloze.ordinal}, '{hidden}', is shown elsewhere on the same side",
                    f"reword the other mention, or hide it with c{cloze.ordinal} as well",
                )
            )
    return problems


def _math_inside(hidden: str, visible: str) -> bool:
    """A hidden formula shown as part of a longer one (`h(f+h+1)` inside `4h(f+h+1)`) gives itself away too."""
    if "$" not in hidden and "\\(" not in hidden:
        return False
    tex = _bare_tex(hidden)
    return len(tex) >= 4 and tex in _bare_tex(visible)


def _bare_tex(text: str) -> str:
    """Formula text without delimiters, spacing commands or spaces, for comparing what a reader sees."""
    return re.sub(r"\$|\\[()\[\],;:! ]|\s+", "", text)


def _question_side_text(nodes: tuple[Node, ...], active: int) -> str:
    """What the question side of cloze `active` shows: its deletions as hints, the rest revealed."""
    pieces = []
    stack: list[Node] = list(reversed(nodes))  # no recursion: nesting depth is the author's
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            pieces.append(node)
        elif node.ordinal == active:
            pieces.append(f"\n[{node.hint}]\n" if node.hint else "\n")
        else:
            stack.extend(reversed(node.nodes))
    return "".join(pieces)
