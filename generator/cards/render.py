"""Turn a card's Markdown into the HTML of its note fields.

Math is handed to MathJax as `\\(…\\)` / `\\[…\\]` exactly as written; code is
highlighted by Pygments with CSS classes, so the note type's stylesheet can
colour it for light and night mode.
"""

from __future__ import annotations

import functools
import html
import re
from pathlib import Path

import markdown
from markdown.extensions import Extension
from markdown.preprocessors import Preprocessor
from markdown.treeprocessors import InlineProcessor
from markdown.util import AtomicString
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name

from generator.cards.images import MAX_IMAGE_BYTES, image_problem
from generator.cards.model import Card, MediaFile, RenderedCard, media_name
from generator.cards.sanitize import policy_violations, sanitize
from generator.cards.scan import Math, Prose, Segment, parse_fence_info, scan
from generator.diagnostics import Diagnostic, Location, error

CODE_CSS_CLASS = "highlight"
CLOZE_OPEN = re.compile(r"\{\{c\d+::")
EXTERNAL_SRC = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
IMAGE_TYPES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg"})
HTML_MARKS = ("<", "](", "]:")  # raw HTML, inline links, reference links
# A line that Markdown can only wrap in <p> and that the sanitiser leaves alone: a letter first (no block
# starts with one), words split by single spaces, no character any inline pattern, entity, math or cloze uses.
PLAIN_LINE = re.compile(r"[A-Za-z][A-Za-z0-9,.?'()/;:%=+-]*(?: [A-Za-z0-9,.?'()/;:%=+-]+)*")
# What each of Python-Markdown's inline patterns (markdown==3.11.3) needs in the text to match at all:
# a pattern whose regex cannot match is skipped, exactly as if it had been tried and failed.
INLINE_TRIGGERS: dict[str, tuple[str, ...]] = {
    "backtick": ("`",),
    "escape": ("\\",),
    "reference": ("[",),
    "link": ("[",),
    "image_link": ("![",),
    "image_reference": ("![",),
    "short_reference": ("[",),
    "short_image_ref": ("![",),
    "autolink": ("<",),
    "automail": ("<",),
    "linebreak": ("  \n",),
    "html": ("<",),
    "entity": ("&",),
    "em_strong": ("*", "_"),
}
SANITISER_HINT = "see 'HTML in cards' in content/README.md for what a card may contain"


def render_card(card: Card) -> tuple[RenderedCard, list[Diagnostic]]:
    """Render a validated card into its note fields (plus the images it uses)."""
    cloze = card.type == "cloze"
    front_segments, back_segments = card.segments()
    front, front_media, front_problems = render_markdown(
        card.front, card.path, card.front_line, cloze=cloze, segments=front_segments
    )
    back, back_media, back_problems = render_markdown(
        card.back, card.path, card.back_line, cloze=cloze, segments=back_segments
    )
    media = {item.name: item for item in (*front_media, *back_media)}
    problems = [*front_problems, *back_problems]
    card_count = len(card.clozes.ordinals) if cloze else 2 if card.type == "reversed" else 1
    rendered = RenderedCard(
        card=card,
        fields=(front, back, card.id),
        media=tuple(media[name] for name in sorted(media)),
        question_text=question_text(card),
        card_count=card_count,
    )
    return rendered, problems


def question_text(card: Card) -> str:
    """The question as one line of plain text (the heading rendered, without its markup)."""
    first_line = card.front.split("\n", 1)[0]
    if not any(mark in first_line for mark in "*_`\\<&["):
        return first_line.strip()
    rendered, _media, _problems = render_markdown(first_line, card.path, card.front_line)
    text = html.unescape(re.sub(r"<[^>]*>", "", rendered))
    # Formulas as authors write them, so every question reads the same in the changelog.
    text = text.replace("\\(", "$").replace("\\)", "$").replace("\\[", "$$").replace("\\]", "$$")
    return " ".join(text.split())


def render_markdown(
    text: str, path: Path, first_line: int, *, cloze: bool = False, segments: tuple[Segment, ...] | None = None
) -> tuple[str, tuple[MediaFile, ...], list[Diagnostic]]:
    """Render Markdown with math and code cut out first; return sanitised HTML, images, problems.

    `segments` is the scanner's reading of `text` (a card's side): rendering uses it instead of
    reading the text again.
    """
    if PLAIN_LINE.fullmatch(text):
        return f"<p>{text}</p>", (), []  # what the whole pipeline makes of it, without the pipeline
    images = _ImageCollector(path, text, first_line)
    md, cutout = _markdown()
    md.reset()
    cutout.begin(path, first_line, cloze=cloze, text=text, segments=segments)
    try:
        body = md.convert(text)
    except RecursionError:
        _markdown.cache_clear()  # its state after the error is unknown: start afresh next time
        problem = error(
            Location(path, first_line, 1),
            "Markdown nested too deeply to render",
            "flatten the nested lists or quotes",
        )
        return "", (), [*cutout.problems, problem]
    cleaned = sanitize(body, images.resolve)
    problems = [*cutout.problems, *images.problems]
    if cutout.may_hold_html:
        for message, needle in policy_violations(body, cleaned, images.renamed):
            problems.append(error(images.locate(needle), message, SANITISER_HINT))
    return cleaned, tuple(images.media), problems


def reset_markdown() -> None:
    """Forget the converter, e.g. after a card was stopped halfway through it."""
    _markdown.cache_clear()


def render_math(tex: str, display: bool, *, cloze: bool) -> str:
    """Wrap TeX in MathJax delimiters, escaped for HTML.

    In a cloze note, Anki ends a deletion at the first `}}` and splits a hint
    at `::`, so outside the deletion markers these become `} }` and `: :`, which
    TeX reads the same way. Deletions inside math keep their markers.
    """
    if cloze:
        tex = _protect_cloze_syntax(tex)
    opener, closer = ("\\[", "\\]") if display else ("\\(", "\\)")
    return f"{opener}{html.escape(tex, quote=False)}{closer}"


def _protect_cloze_syntax(tex: str) -> str:
    pieces: list[str] = []  # alternating TeX and cloze markers
    plain: list[str] = []
    open_depths: list[int] = []  # TeX brace depth at each open deletion
    depth = 0
    i = 0

    def flush(next_marker: str) -> None:
        text = "".join(plain)
        while "}}" in text:
            text = text.replace("}}", "} }")
        text = text.replace("::", ": :")
        if next_marker == "}}" and text.endswith("}"):
            text += " "  # `x^{2}` + `}}` would read as `x^{2` + `}}` + `}`
        pieces.append(text)
        plain.clear()

    while i < len(tex):
        opening = CLOZE_OPEN.match(tex, i)
        if opening:
            flush(opening.group())
            pieces.append(opening.group())
            open_depths.append(depth)
            i = opening.end()
        elif tex.startswith("}}", i) and open_depths and depth == open_depths[-1]:
            flush("}}")
            pieces.append("}}")
            open_depths.pop()
            i += 2
        else:
            depth += {"{": 1, "}": -1}.get(tex[i], 0)
            plain.append(tex[i])
            i += 1
    flush("")
    return "".join(pieces)


def render_code(info: str, code: str) -> tuple[str, str | None]:
    """Highlight a fenced block; return its HTML or a problem description."""
    fence, problem = parse_fence_info(info)
    if fence is None:
        return "", problem
    try:
        lexer, formatter = _highlighter(fence.language)
    except ValueError:
        return "", f"unknown code language '{fence.language}'"
    return highlight(code, lexer, formatter), None


@functools.lru_cache(maxsize=64)
def _highlighter(language: str) -> tuple[Lexer, HtmlFormatter[str]]:
    """One lexer and one formatter per language, made once: both are costly to build and keep no state."""
    lexer = get_lexer_by_name(language, stripnl=False, ensurenl=True)
    return lexer, HtmlFormatter(cssclass=f"{CODE_CSS_CLASS} language-{language}", wrapcode=True)


@functools.cache
def _markdown() -> tuple[markdown.Markdown, _CutOutPreprocessor]:
    """One Markdown converter per process, reset before each card (building one costs more than a card)."""
    cutout = _CutOutPreprocessor()
    md = markdown.Markdown(extensions=["tables", "sane_lists", _CardExtension(cutout)], output_format="html")
    md.treeprocessors.register(_TriggeredInlineProcessor(md), "inline", 20)
    return md, cutout


class _TriggeredInlineProcessor(InlineProcessor):
    """Markdown's inline processor, with its patterns in a plain list and each skipped when it cannot match.

    The stock loop asks the pattern registry for every pattern of every text node and runs
    every regex; most text holds none of the characters most patterns start with.
    """

    def __init__(self, md: markdown.Markdown) -> None:
        super().__init__(md)
        registry = md.inlinePatterns
        self.patterns = list(registry)
        # Names in the registry's (sorted) order; a pattern we do not know is always tried.
        names = [item.name for item in registry._priority]
        self.triggers = [INLINE_TRIGGERS.get(name) for name in names]

    def _InlineProcessor__handleInline(self, data: str, index: int = 0) -> str:  # noqa: N802
        # The stock loop (markdown/treeprocessors.py), plus the skip: its name is mangled, so this replaces it.
        if not isinstance(data, AtomicString):
            apply = self._InlineProcessor__applyPattern
            patterns, triggers = self.patterns, self.triggers
            start = 0
            count = len(patterns)
            while index < count:
                needles = triggers[index]
                if needles is not None:
                    for needle in needles:  # a loop, not any(): this runs for every pattern and text node
                        if needle in data:
                            break
                    else:
                        index += 1
                        start = 0  # what a failed match returns
                        continue
                data, matched, start = apply(patterns[index], data, index, start)
                if not matched:
                    index += 1
        return data


class _ImageCollector:
    """Gathers the images a card uses, renaming each by its content hash.

    Only regular files inside the content folder (after following symlinks)
    may be packed: a card must never carry a file from elsewhere into a deck.
    """

    def __init__(self, path: Path, text: str, first_line: int) -> None:
        self.path = path
        self.root = path.parent.parent  # cards live in <content>/<topic>/
        self.text = text
        self.first_line = first_line
        self.media: list[MediaFile] = []
        self.renamed: dict[str, str | None] = {}  # None: reported as unusable
        self.problems: list[Diagnostic] = []

    def resolve(self, src: str) -> str | None:
        if src in self.renamed:
            return self.renamed[src]
        media, problem = _load_image(self.path.parent, self.root, src)
        if media is None:
            self.problems.append(error(self.locate(src), *problem))
            self.renamed[src] = None
            return None
        self.media.append(media)
        self.renamed[src] = media.name
        return media.name

    def locate(self, needle: str) -> Location:
        position = self.text.find(needle) if needle else -1
        if position == -1:
            return Location(self.path, self.first_line, 1)
        line = self.text.count("\n", 0, position)
        col = position - (self.text.rfind("\n", 0, position) + 1)
        return Location(self.path, self.first_line + line, col + 1)


def _load_image(folder: Path, root: Path, src: str) -> tuple[MediaFile | None, tuple[str, str]]:
    """Read an image named by a card; return it, or (message, hint) saying why not."""
    shown = src if len(src) <= 80 else src[:77] + "..."
    if not src or "\x00" in src or EXTERNAL_SRC.match(src) or src.startswith(("/", "\\")):
        return None, (f"image '{shown}' is not a file next to the card", "copy it into the topic folder")
    try:
        source = (folder / src).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None, (f"image '{shown}' not found", "fix the path, or put the file next to the card")
    if not source.is_relative_to(root):
        return None, (
            f"image '{shown}' lies outside the content folder",
            "copy the image into the topic folder; files from elsewhere are never packed",
        )
    if not source.is_file():
        return None, (f"image '{shown}' is not a regular file", "name an image file")
    suffix = source.suffix.lower()
    if suffix not in IMAGE_TYPES:
        return None, (f"image '{shown}' has an unsupported type", f"use one of: {', '.join(sorted(IMAGE_TYPES))}")
    if source.stat().st_size > MAX_IMAGE_BYTES:
        return None, (f"image '{shown}' is larger than {MAX_IMAGE_BYTES // 1_000_000} MB", "shrink it")
    data = source.read_bytes()
    if found := image_problem(suffix, data):
        return None, (f"image '{shown}': {found[0]}", found[1])
    return MediaFile(media_name(source, data), source, data), ("", "")


class _CutOutPreprocessor(Preprocessor):
    """Replace math and fenced code by placeholders before any Markdown rule sees them.

    It runs after Markdown's whitespace normalisation (which would strip the
    placeholders' marker characters if they were in the source text).
    """

    def __init__(self) -> None:
        super().__init__()
        self.begin(Path(), 1, cloze=False)

    def begin(
        self, path: Path, first_line: int, *, cloze: bool, text: str = "", segments: tuple[Segment, ...] | None = None
    ) -> None:
        """Start on a new piece of Markdown (with its segments when the caller has read them)."""
        self.path = path
        self.first_line = first_line
        self.cloze = cloze
        self.text = text
        self.segments = segments
        self.problems: list[Diagnostic] = []
        self.may_hold_html = False  # raw HTML or a link in the prose: compare with the sanitised HTML

    def run(self, lines: list[str]) -> list[str]:
        normalised = "\n".join(lines)
        if self.segments is not None and normalised.rstrip("\n") == self.text.rstrip("\n"):
            segments = self.segments
        else:
            # Markdown's whitespace normalisation changed the text (tabs, blank lines of spaces):
            # read what Markdown will actually see.
            segments, problems = scan(normalised, self.path, self.first_line)
            self.problems.extend(problems)
        stash = self.md.htmlStash
        pieces: list[str] = []
        for segment in segments:
            if isinstance(segment, Prose):
                pieces.append(segment.text)
                self.may_hold_html = self.may_hold_html or any(mark in segment.text for mark in HTML_MARKS)
            elif isinstance(segment, Math):
                pieces.append(stash.store(render_math(segment.tex, segment.display, cloze=self.cloze)))
            else:
                code_html, problem = render_code(segment.info, segment.code)
                if problem:
                    self.problems.append(error(segment.location, problem))
                    continue
                # A block of its own, so Markdown does not wrap it in <p>.
                pieces.append(f"\n\n{segment.indent}{stash.store(code_html)}\n\n")
        return "".join(pieces).split("\n")


class _CardExtension(Extension):
    def __init__(self, cutout: _CutOutPreprocessor) -> None:
        super().__init__()
        self.cutout = cutout

    def extendMarkdown(self, md: markdown.Markdown) -> None:  # noqa: N802 (Markdown's API name)
        self.cutout.md = md
        md.preprocessors.register(self.cutout, "deck_cutout", 29)
