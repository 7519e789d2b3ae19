"""Turn a card's Markdown into the HTML of its note fields.

Math is handed to MathJax as `\\(…\\)` / `\\[…\\]` exactly as written; code is
highlighted by Pygments with CSS classes, so the note type's stylesheet can
colour it for light and night mode.
"""

from __future__ import annotations

import hashlib
import html
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import markdown
from markdown.extensions import Extension
from markdown.preprocessors import Preprocessor
from markdown.treeprocessors import Treeprocessor
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name

from generator.diagnostics import Diagnostic, Location, error
from generator.model import Card, MediaFile, RenderedCard
from generator.scan import Math, Prose, parse_fence_info, scan

CODE_CSS_CLASS = "highlight"
CLOZE_OPEN = re.compile(r"\{\{c\d+::")
EXTERNAL_SRC = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def render_card(card: Card) -> tuple[RenderedCard, list[Diagnostic]]:
    """Render a validated card into its note fields (plus the images it uses)."""
    cloze = card.type == "cloze"
    front, front_media, front_problems = render_markdown(card.front, card.path, card.front_line, cloze=cloze)
    back, back_media, back_problems = render_markdown(card.back, card.path, card.back_line, cloze=cloze)
    media = {item.name: item for item in (*front_media, *back_media)}
    rendered = RenderedCard(
        card=card,
        fields=(front, back, card.id),
        media=tuple(media[name] for name in sorted(media)),
        question_text=question_text(card),
    )
    return rendered, [*front_problems, *back_problems]


def question_text(card: Card) -> str:
    """The question as one line of plain text (the heading without its Markdown)."""
    first_line = card.front.split("\n", 1)[0]
    return re.sub(r"[*_`]", "", first_line).strip()


def render_markdown(
    text: str, path: Path, first_line: int, *, cloze: bool = False
) -> tuple[str, tuple[MediaFile, ...], list[Diagnostic]]:
    """Render Markdown with math and code cut out first; return HTML, images, problems."""
    images = _ImageCollector(path, text, first_line)
    cutout = _CutOutPreprocessor(path, first_line, cloze=cloze)
    md = markdown.Markdown(extensions=["tables", "sane_lists", _CardExtension(cutout, images)], output_format="html")
    body = md.convert(text)
    return body, tuple(images.media), [*cutout.problems, *images.problems]


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
        lexer = get_lexer_by_name(fence.language, stripnl=False, ensurenl=True)
    except ValueError:
        return "", f"unknown code language '{fence.language}'"
    formatter = HtmlFormatter(cssclass=f"{CODE_CSS_CLASS} language-{fence.language}", wrapcode=True)
    return highlight(code, lexer, formatter), None


class _ImageCollector:
    """Gathers the images a card uses, renaming each by its content hash."""

    def __init__(self, path: Path, text: str, first_line: int) -> None:
        self.path = path
        self.text = text
        self.first_line = first_line
        self.media: list[MediaFile] = []
        self.problems: list[Diagnostic] = []

    def resolve(self, src: str) -> str | None:
        location = self._locate(src)
        if EXTERNAL_SRC.match(src) or src.startswith("/"):
            self.problems.append(
                error(location, f"image '{src}' is not a file next to the card", "copy it into the topic folder")
            )
            return None
        source = (self.path.parent / src).resolve()
        if not source.is_file():
            self.problems.append(
                error(location, f"image '{src}' not found", f"put the file at {source} or fix the path")
            )
            return None
        data = source.read_bytes()
        name = f"{source.stem}-{hashlib.sha1(data).hexdigest()[:12]}{source.suffix.lower()}"
        self.media.append(MediaFile(name, source, data))
        return name

    def _locate(self, src: str) -> Location:
        position = self.text.find(src)
        if position == -1:
            return Location(self.path, self.first_line, 1)
        line = self.text.count("\n", 0, position)
        col = position - (self.text.rfind("\n", 0, position) + 1)
        return Location(self.path, self.first_line + line, col + 1)


class _ImageTreeprocessor(Treeprocessor):
    def __init__(self, md: markdown.Markdown, images: _ImageCollector) -> None:
        super().__init__(md)
        self.images = images

    def run(self, root: ET.Element) -> None:
        for image in root.iter("img"):
            name = self.images.resolve(image.get("src", ""))
            if name is not None:
                image.set("src", name)


class _CutOutPreprocessor(Preprocessor):
    """Replace math and fenced code by placeholders before any Markdown rule sees them.

    It runs after Markdown's whitespace normalisation (which would strip the
    placeholders' marker characters if they were in the source text).
    """

    def __init__(self, path: Path, first_line: int, *, cloze: bool) -> None:
        super().__init__()
        self.path = path
        self.first_line = first_line
        self.cloze = cloze
        self.problems: list[Diagnostic] = []

    def run(self, lines: list[str]) -> list[str]:
        segments, problems = scan("\n".join(lines), self.path, self.first_line)
        self.problems.extend(problems)
        stash = self.md.htmlStash
        pieces: list[str] = []
        for segment in segments:
            if isinstance(segment, Prose):
                pieces.append(segment.text)
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
    def __init__(self, cutout: _CutOutPreprocessor, images: _ImageCollector) -> None:
        super().__init__()
        self.cutout = cutout
        self.images = images

    def extendMarkdown(self, md: markdown.Markdown) -> None:  # noqa: N802 (Markdown's API name)
        self.cutout.md = md
        md.preprocessors.register(self.cutout, "deck_cutout", 29)
        md.treeprocessors.register(_ImageTreeprocessor(md, self.images), "deck_images", 5)
