"""`decks preview`: a static site that shows every card the way a reviewer sees it.

Each card goes through the build's own per-card step (`compile_card`: parse,
validate, reader checks, render), so the preview shows exactly the fields and
diagnostics of a build, and then through the note type's templates as Anki
fills them. Each side is a document of its own (an iframe) with the note
type's CSS, switchable between light and night and between desktop and phone
width. Math is typeset as MathML on the way, so the site needs no network.

What a card says never runs and never fetches (see "What the preview
guarantees" in the README): each side is a sandboxed frame without scripts or
the site's origin, with its stylesheet and images inside it; every page and
frame carries a Content-Security-Policy with `default-src 'none'`; card text
outside the frames is escaped; the folder is written without following
symlinks, and only files listed in the folder's manifest are ever deleted.

`preview_card` is a pure function of one source file (and the images it
names); `PreviewSite` keeps the previews and rewrites only the pages whose
card changed.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import os
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from generator.apkg.notetype import NoteType, note_types
from generator.apkg.package import write_atomic
from generator.cards.cloze import read_clozes
from generator.cards.compile import check_unique_ids, compile_card
from generator.cards.load import Content, SourceFile, load_content
from generator.cards.model import Card, CardType, DeckSet, MediaFile
from generator.cards.scan import Math, Prose, scan
from generator.diagnostics import Diagnostic, display_path, sort_key, summarize
from generator.preview.assets import ANKI_READER_CSS, PHONE_WIDTH_PX, PREVIEW_CSS, PREVIEW_JS
from generator.preview.math import MathProblem, tex_to_mathml, typeset_math
from generator.preview.template import render_template

# Marks a folder this command may clean up, and lists the files it wrote there:
# only those are ever deleted.
MARKER_FILE = ".decks-preview"
MARKER_HEADER = "Written by 'decks preview'; safe to delete. Files it wrote:"
CARDS_DIR = "cards"
ASSETS_DIR = "assets"
SHELL_CSS = f"{ASSETS_DIR}/preview.css"
SHELL_JS = f"{ASSETS_DIR}/preview.js"
INDEX = "index.html"
# The names this command writes: anything else in a manifest is not ours to delete.
SITE_FILE = re.compile(r"(?:index\.html|assets/[a-z]+\.(?:css|js)|cards/[\w.-]+/[\w.-]+\.html)")
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp", ".svg": "image/svg+xml"}  # fmt: skip
IMG_TAG = re.compile(r"<img\b[^>]*>")
# The only style attributes the sanitiser lets through (table column alignment), as it writes them.
ALIGNMENT_STYLES = tuple(f"text-align:{side}" for side in ("left", "center", "right", "justify"))


class PreviewError(Exception):
    """The preview cannot be written where asked; the message says why."""


@dataclass(frozen=True, slots=True)
class Side:
    """One side of one Anki card, as HTML ready for the card's document."""

    html: str
    ordinal: int  # Anki's card number (1-based): the body gets class 'card<ordinal>'


@dataclass(frozen=True, slots=True)
class CardView:
    """One Anki card of a note: its question and its answer."""

    label: str
    question: Side
    answer: Side


@dataclass(frozen=True, slots=True)
class CardPreview:
    """Everything the preview shows about one card file."""

    source: Path
    topic: str
    page: str  # the page's path in the site
    title: str  # plain text: the question, or the file name when the card has no valid question
    title_html: str  # the question with its math typeset
    card: Card | None
    diagnostics: tuple[Diagnostic, ...]
    views: tuple[CardView, ...]
    media: tuple[MediaFile, ...]
    math_problems: tuple[MathProblem, ...]
    source_text: str

    @property
    def errors(self) -> int:
        return sum(d.severity == "error" for d in self.diagnostics)

    @property
    def warnings(self) -> int:
        return sum(d.severity == "warning" for d in self.diagnostics)


def page_path(source: SourceFile) -> str:
    """Where a card's page lives in the site: by file, so a broken card keeps its page."""
    return f"{CARDS_DIR}/{source.topic}/{source.path.stem}.html"


def preview_card(source: SourceFile, types: dict[CardType, NoteType]) -> CardPreview:
    """Preview one card file: a pure function of the file's text and the note types."""
    assert source.text is not None  # the preview reads every file (it gives `load_content` no known files)
    rendered, problems = compile_card(source)
    diagnostics = tuple(sorted(problems, key=sort_key))
    if rendered is None:
        name = source.path.name
        return CardPreview(
            source.path,
            source.topic,
            page_path(source),
            name,
            html.escape(name),
            None,
            diagnostics,
            (),
            (),
            (),
            source.text,
        )
    card = rendered.card
    note_type = types[card.type]
    fields = dict(zip(note_type.fields, rendered.fields, strict=True))
    views: list[CardView] = []
    math_problems: list[MathProblem] = []
    for label, template_index, ordinal in _cards_of(card, note_type, fields):
        template = note_type.templates[template_index]
        cloze = ordinal if note_type.is_cloze else None
        question = render_template(template.question, fields, cloze_ordinal=cloze, question=True)
        answer = render_template(template.answer, fields, cloze_ordinal=cloze, question=False, front_side=question)
        question_html, found = typeset_math(question)
        math_problems.extend(found)
        answer_html, found = typeset_math(answer)
        math_problems.extend(found)
        views.append(CardView(label, Side(question_html, ordinal), Side(answer_html, ordinal)))
    return CardPreview(
        source.path,
        source.topic,
        page_path(source),
        rendered.question_text,
        _title_html(card),
        card,
        diagnostics,
        tuple(views),
        rendered.media,
        tuple(dict.fromkeys(math_problems)),
        source.text,
    )


def _cards_of(card: Card, note_type: NoteType, fields: dict[str, str]) -> list[tuple[str, int, int]]:
    """(label, template index, Anki card ordinal) of each card Anki makes from this note."""
    if note_type.is_cloze:
        return [(f"Cloze {n}", 0, n) for n in read_clozes(fields[note_type.fields[0]]).ordinals]
    if len(note_type.templates) == 1:
        return [("Card 1", 0, 1)]
    directions = ("question → answer", "answer → question")
    return [(f"{t.name}: {d}", i, i + 1) for i, (t, d) in enumerate(zip(note_type.templates, directions, strict=False))]


def _title_html(card: Card) -> str:
    """The question line as written, with code spans, emphasis and formulas shown as on the card.

    Only this function's own tags reach the page: every character of the card is escaped.
    """
    first_line = card.front.split("\n", 1)[0]
    segments, _ = scan(first_line, card.path, card.front_line)
    pieces = []
    for segment in segments:
        if isinstance(segment, Math):
            try:
                pieces.append(tex_to_mathml(segment.tex, display=False))
            except ValueError:
                pieces.append(html.escape(f"${segment.tex}$"))
        elif isinstance(segment, Prose):
            pieces.append(inline_markdown_html(segment.text))
    return "".join(pieces).strip()


# A code span, strong or emphasised text, or a backslash escape. Underscores inside a
# word (`train_step`) are text, as in Python-Markdown.
INLINE_MARKUP = re.compile(
    r"(?P<ticks>`+)(?P<code>.+?)(?P=ticks)"
    r"|(?<![\w*])(?P<strong>\*\*|__)(?=\S)(?P<strong_text>.+?)(?<=\S)(?P=strong)(?![\w*])"
    r"|(?<![\w*])(?P<em>[*_])(?=\S)(?P<em_text>.+?)(?<=\S)(?P=em)(?![\w*])"
    r"|\\(?P<escaped>[\\`*_{}\[\]()#+\-.!$])"
)


def inline_markdown_html(text: str) -> str:
    """Markdown inline markup of a title as HTML: <code>, <strong>, <em>; all else escaped as written."""
    pieces: list[str] = []
    position = 0
    for match in INLINE_MARKUP.finditer(text):
        pieces.append(html.escape(text[position : match.start()]))
        if match.group("code") is not None:
            pieces.append(f"<code>{html.escape(match.group('code').strip())}</code>")
        elif match.group("strong") is not None:
            pieces.append(f"<strong>{inline_markdown_html(match.group('strong_text'))}</strong>")
        elif match.group("em") is not None:
            pieces.append(f"<em>{inline_markdown_html(match.group('em_text'))}</em>")
        else:
            pieces.append(html.escape(match.group("escaped")))
        position = match.end()
    pieces.append(html.escape(text[position:]))
    return "".join(pieces)


# --- what pages may load -----------------------------------------------------


def _hash_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@functools.cache
def card_stylesheet() -> str:
    """What each side's document holds as its stylesheet: the reader's defaults and the note type's CSS."""
    return ANKI_READER_CSS + "\n" + note_types()["basic"].css


@functools.cache
def frame_policy() -> str:
    """The policy inside each card frame: no script at all, nothing fetched, only its own stylesheet.

    Images come inside the document as data: URLs, because a sandboxed frame
    (an opaque origin) may not load files from a file:// site.
    """
    return f"default-src 'none'; style-src {_style_sources()}; img-src data:; base-uri 'none'; form-action 'none'"


@functools.cache
def page_policy() -> str:
    """The policy of the index and the card pages (a meta tag, and a header from the server).

    'self' is for the site's own stylesheet and script and, under --serve, the
    live-reload script and its fingerprint requests. A card frame (srcdoc)
    inherits this policy as well as its own, so the card stylesheet's hash is here too.
    """
    return (
        f"default-src 'none'; script-src 'self'; style-src 'self' {_style_sources()}; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'"
    )


def _style_sources() -> str:
    # 'unsafe-hashes' allows exactly the alignment styles of table cells, nothing else inline.
    alignments = " ".join(_hash_source(style) for style in ALIGNMENT_STYLES)
    return f"{_hash_source(card_stylesheet())} 'unsafe-hashes' {alignments}"


def _policy_meta(policy: str) -> str:
    return f'<meta http-equiv="Content-Security-Policy" content="{html.escape(policy)}">'


# --- pages -----------------------------------------------------------------


def card_page(preview: CardPreview, deck_name: str, extra: tuple[Diagnostic, ...] = ()) -> str:
    """The HTML page of one card; `extra` are diagnostics that involve other cards (duplicate ids)."""
    root = "../../"
    card = preview.card
    facts = [html.escape(display_path(preview.source)), html.escape(deck_name)]
    if card is not None:
        facts += [html.escape(card.id), html.escape(card.type)]
        if card.tags:
            facts.append("tags: " + ", ".join(f"<span class='tag'>{html.escape(t)}</span>" for t in card.tags))
    parts = [
        _head(preview.title, root),
        '<header class="bar">',
        f'<a class="home" href="{root}{INDEX}">All cards</a>',
        _switches(),
        "</header>",
        "<main>",
        f'<h1 class="title">{preview.title_html}</h1>',
        f'<p class="facts">{" · ".join(facts)}</p>',
        _diagnostics_html((*preview.diagnostics, *extra)),
        _math_problems_html(preview.math_problems),
    ]
    if not preview.views:
        parts.append('<h2>Source</h2><pre class="source">' + html.escape(preview.source_text) + "</pre>")
    for view in preview.views:
        parts += [
            '<section class="view">',
            f"<h2>{html.escape(view.label)}</h2>",
            '<div class="sides">',
            _side_frame("Question", view.question, preview.media),
            _side_frame("Answer", view.answer, preview.media),
            "</div>",
            "</section>",
        ]
    parts += ["</main>", f'<script src="{root}{SHELL_JS}"></script>', "</body>", "</html>", ""]
    return "\n".join(parts)


def index_page(
    deckset: DeckSet | None,
    previews: Iterable[CardPreview],
    problems: tuple[Diagnostic, ...] = (),
    entry: Callable[[CardPreview], str] | None = None,
) -> str:
    """The site's front page: every card by topic, with jumps to topics and a search over questions and tags."""
    by_topic: dict[str, list[CardPreview]] = {}
    for preview in previews:
        by_topic.setdefault(preview.topic, []).append(preview)
    total = sum(len(cards) for cards in by_topic.values())
    title = deckset.name if deckset else "Cards"
    topics = [(t.key, t.name) for t in deckset.topics] if deckset else []
    topics += [(key, key) for key in sorted(by_topic) if key not in dict(topics)]
    jumps = "".join(
        f'<li><a href="#{_topic_anchor(key)}">{html.escape(name)}</a> '
        f'<small class="topic-count" data-topic="{html.escape(key)}">{len(by_topic.get(key, []))}</small></li>'
        for key, name in topics
    )
    parts = [
        _head(f"{title}: preview", ""),
        '<header class="bar">',
        f'<span class="home">{html.escape(title)}</span>',
        '<input id="search" type="search" placeholder="Search questions, or tag:name" '
        'aria-label="Search questions and tags" autocomplete="off">',
        f'<span id="count" class="count">{total} cards</span>',
        _switches(),
        "</header>",
        "<main>",
        _diagnostics_html(problems),
        f'<nav class="jumps" aria-label="Topics"><ul>{jumps}</ul></nav>',
        '<p id="no-match" class="no-match" hidden>No cards match.</p>',
    ]
    for key, topic_name in topics:
        cards = sorted(by_topic.get(key, []), key=lambda p: p.title.casefold())
        parts.append(
            f'<section class="topic" id="{_topic_anchor(key)}" data-topic="{html.escape(key)}">'
            f'<h2>{html.escape(topic_name)} <small class="topic-count">{len(cards)}</small></h2>'
        )
        parts.append('<ul class="cards">')
        for preview in cards:
            parts.append((entry or index_entry)(preview))
        parts.append("</ul></section>")
    parts += ["</main>", f'<script src="{SHELL_JS}"></script>', "</body>", "</html>", ""]
    return "\n".join(parts)


def _topic_anchor(key: str) -> str:
    return "topic-" + quote(key, safe="")


def index_entry(preview: CardPreview) -> str:
    """One card's line in the index: its question, type, problems and tags."""
    card = preview.card
    tags = (*card.tags, preview.topic) if card else (preview.topic,)
    badges = f'<span class="type">{html.escape(card.type)}</span>' if card else ""
    if preview.errors:
        badges += f'<span class="badge error">{preview.errors} error{"s" if preview.errors > 1 else ""}</span>'
    if preview.warnings:
        badges += f'<span class="badge warning">{preview.warnings} warning{"s" if preview.warnings > 1 else ""}</span>'
    tag_html = "".join(f'<button class="tag" type="button">{html.escape(t)}</button>' for t in tags)
    return (
        f'<li data-text="{html.escape(preview.title.casefold())}" data-tags="{html.escape(" ".join(tags))}">'
        f'<a href="{quote(preview.page)}">{preview.title_html}</a> {badges}<span class="tags">{tag_html}</span></li>'
    )


def _head(title: str, root: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"{_policy_meta(page_policy())}\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n"
        '<link rel="icon" href="data:,">\n'  # no request for /favicon.ico
        f'<link rel="stylesheet" href="{root}{SHELL_CSS}">\n</head>\n<body>'
    )


def _switches() -> str:
    return (
        '<span class="switches">'
        '<button id="theme" type="button" aria-pressed="false">Night</button>'
        '<button id="width" type="button" aria-pressed="false">Phone width</button>'
        "</span>"
    )


def side_document(side: Side, media: Iterable[MediaFile] = ()) -> str:
    """A side as Anki shows it: its own document with the note type's CSS, body class 'card card<n>'.

    The document needs nothing from outside: its stylesheet is in it and the
    card's images (`media`) become data: URLs, so it shows the same from a
    file:// folder and from the server, inside a sandbox that may load nothing.
    """
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"{_policy_meta(frame_policy())}"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{card_stylesheet()}</style></head>"
        f'<body class="card card{side.ordinal}"><div id="qa">{_inline_images(side.html, media)}</div></body></html>'
    )


def _inline_images(side_html: str, media: Iterable[MediaFile]) -> str:
    """Point each `<img src>` naming one of the card's images at the image's bytes."""
    urls = {
        f'src="{html.escape(m.name)}"': f'src="data:{IMAGE_TYPES[Path(m.name).suffix.lower()]};base64,'
        f'{base64.b64encode(m.data).decode()}"'
        for m in media
        if Path(m.name).suffix.lower() in IMAGE_TYPES
    }
    if not urls:
        return side_html

    def replace(tag: re.Match[str]) -> str:
        found = re.search(r'src="[^"]*"', tag.group(0))
        if found is None or found.group(0) not in urls:
            return tag.group(0)
        return tag.group(0)[: found.start()] + urls[found.group(0)] + tag.group(0)[found.end() :]

    return IMG_TAG.sub(replace, side_html)


def _side_frame(label: str, side: Side, media: Iterable[MediaFile]) -> str:
    # The frame is sandboxed with no permission at all: no script, no forms, no
    # popups, and an opaque origin, so nothing in it can reach the page or the
    # site. Its page cannot measure it either (nor can it run a script to say
    # its size), so its height is estimated here for each width and the frame
    # scrolls inside if the estimate falls short; it can be resized by hand.
    desktop = estimated_height(side.html, DESKTOP_CONTENT_PX)
    phone = estimated_height(side.html, PHONE_WIDTH_PX)
    return (
        f'<figure class="side"><figcaption>{label}</figcaption>'
        f'<iframe class="side-frame" sandbox="" title="{label}" data-ordinal="{side.ordinal}" data-night="false" '
        f'data-height="{desktop}" data-phone-height="{phone}" height="{desktop}" '
        f'srcdoc="{html.escape(side_document(side, media))}"></iframe>'
        "</figure>"
    )


# --- frame heights -------------------------------------------------------------

DESKTOP_CONTENT_PX = 874  # the note type's max-width (46em of 19px): wider frames add margins only
FONT_PX = 19
LINE_PX = FONT_PX * 1.45
CODE_LINE_PX = FONT_PX * 0.88 * 1.35
CHAR_PX = FONT_PX * 0.55  # an average character of the sans-serif text
BLOCKS = frozenset(
    {"p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "blockquote", "figure", "figcaption",
     "dt", "dd", "summary", "table", "ul", "ol", "details"}
)  # fmt: skip


class _HeightEstimate(HTMLParser):
    """A rough layout of a side: lines of wrapped text, code lines, formulas and images."""

    def __init__(self, width: int) -> None:
        super().__init__(convert_charrefs=True)
        self.chars_per_line = max(10, int((width - 63) / CHAR_PX))  # body margins and card padding
        self.height = 40.0  # the body's margins
        self.chars = 0  # of the text line being laid out
        self.pre = 0
        self.code = ""
        self.cells: list[int] = []  # characters in each cell of the table row being laid out
        self.math = 0
        self.rows = 0

    def flush(self) -> None:
        if self.chars:
            self.height += -(-self.chars // self.chars_per_line) * LINE_PX + FONT_PX * 0.5
            self.chars = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("td", "th"):
            self.cells.append(0)  # a row's cells share its width: its height is its longest cell's
            return
        if tag in BLOCKS:
            self.flush()
        if tag == "pre":
            self.flush()
            self.pre += 1
            self.height += FONT_PX * 2.4  # padding and margins of the code box
        elif tag == "math":
            self.math += 1
            if values.get("display") == "block":
                self.flush()
                self.height += LINE_PX * 2.5
        elif tag == "mtr" and self.math:
            self.height += LINE_PX * 1.2
        elif tag == "mfrac" and self.math:
            self.height += FONT_PX * 0.6
        elif tag == "hr":
            self.flush()
            self.height += FONT_PX * 2
        elif tag == "img":
            self.flush()
            self.height += _number(values.get("height"), 240) + FONT_PX
        elif tag == "br":
            self.chars = -(-self.chars // self.chars_per_line) * self.chars_per_line + (self.chars > 0)
            self.flush()

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self.cells:
            per_cell = max(4, self.chars_per_line // len(self.cells))
            self.height += max(-(-chars // per_cell) for chars in self.cells) * LINE_PX + FONT_PX * 0.5
            self.cells = []
            return
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
            if not self.pre:
                self.height += len(self.code.rstrip("\n").split("\n")) * CODE_LINE_PX
                self.code = ""
        elif tag == "math":
            self.math = max(0, self.math - 1)
        elif tag in BLOCKS:
            self.flush()

    def handle_data(self, data: str) -> None:
        if self.pre:
            self.code += data  # highlighted code comes in many pieces: count its lines at </pre>
        elif data.strip() and self.cells:
            self.cells[-1] += len(" ".join(data.split()))
        elif data.strip():
            self.chars += len(" ".join(data.split()))


def _number(value: str | None, default: float) -> float:
    try:
        return float(value) if value else default
    except ValueError:
        return default


def estimated_height(side_html: str, width: int) -> int:
    """A frame height (px) that holds the side at `width` px, erring on the tall side."""
    estimate = _HeightEstimate(width)
    estimate.feed(side_html)
    estimate.close()
    estimate.flush()
    return int(estimate.height + FONT_PX)


def _diagnostics_html(diagnostics: Iterable[Diagnostic]) -> str:
    items = [
        f'<li class="{d.severity}"><pre>{html.escape(d.format())}</pre></li>' for d in sorted(diagnostics, key=sort_key)
    ]
    if not items:
        return ""
    return f'<ul class="diagnostics">{"".join(items)}</ul>'


def _math_problems_html(problems: tuple[MathProblem, ...]) -> str:
    if not problems:
        return ""
    items = "".join(
        f"<li><code>{html.escape(p.tex)}</code>: {html.escape(p.reason)}</li>" for p in dict.fromkeys(problems)
    )
    return f'<div class="math-problems"><p>Formulas the preview cannot typeset:</p><ul>{items}</ul></div>'


# --- the folder ------------------------------------------------------------------


def _is_site_name(name: str) -> bool:
    """A relative path this command could have written: no '..', no absolute path, a name of ours."""
    parts = PurePosixPath(name).parts
    return (
        bool(parts)
        and "\\" not in name
        and "\0" not in name
        and not PurePosixPath(name).is_absolute()
        and all(part not in ("", ".", "..") for part in parts)
        and (
            name in (INDEX, SHELL_CSS, SHELL_JS)
            or (parts[0] == CARDS_DIR and len(parts) == 3 and name.endswith(".html"))
        )
    )


def _symlink_in(path: Path) -> Path | None:
    """The first component of `path` (as given) that is a symlink, or None; missing ones are not."""
    current = Path(path.anchor) if path.is_absolute() else Path()
    for part in path.parts[1:] if path.is_absolute() else path.parts:
        current = current / part
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return current
        except FileNotFoundError:
            return None
    return None


# --- the site --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SiteReport:
    """What one build or update of the site did."""

    cards: int
    rebuilt: tuple[Path, ...]  # card files whose preview was computed afresh
    written: tuple[str, ...]  # site files whose bytes changed
    diagnostics: tuple[Diagnostic, ...]

    def summary(self) -> str:
        return summarize(self.diagnostics)


class PreviewSite:
    """The preview of a content folder, kept up to date one changed card at a time.

    The folder is never written through a symlink, and only files named in its
    manifest (`MARKER_FILE`, written before the files it lists) are deleted.
    """

    def __init__(self, content_dir: Path, out_dir: Path) -> None:
        self.content_dir = content_dir
        self.out_dir = out_dir
        self.types = note_types()
        self._previews: dict[Path, tuple[SourceFile, CardPreview]] = {}
        self._pages: dict[str, bytes] = {}  # what each written file holds
        self._made: set[str] = set()  # files this folder's manifest says the command wrote
        self._page_cache: dict[str, tuple[CardPreview, str, tuple[Diagnostic, ...], bytes]] = {}
        self._entry_cache: dict[str, tuple[CardPreview, str]] = {}
        self._claim_folder()

    def build(self) -> SiteReport:
        """Build the site afresh: delete every file an earlier preview wrote, then write every page."""
        self._previews.clear()
        self._pages.clear()
        for name in sorted(self._made):
            self._delete(name)
        self._made.clear()
        return self.update()

    def update(self, changed: Iterable[Path] = ()) -> SiteReport:
        """Re-read the content; preview again only the cards whose text (or folder's images) changed."""
        content, load_problems = load_content(self.content_dir)
        touched_folders = {p.resolve().parent for p in changed if p.suffix != ".md"}
        sources = content.files if content else ()
        rebuilt: list[Path] = []
        previews: dict[Path, tuple[SourceFile, CardPreview]] = {}
        for source in sources:
            cached = self._previews.get(source.path)
            if (
                cached
                and cached[0] == source
                and not (touched_folders and source.path.parent.resolve() in touched_folders)
            ):
                previews[source.path] = cached
            else:
                previews[source.path] = (source, preview_card(source, self.types))
                rebuilt.append(source.path)
        self._previews = previews
        cross = self._cross_card_problems()
        written = self._write(self._site_files(content, tuple(load_problems), cross))
        diagnostics = [*load_problems, *cross.values()]
        for _, preview in previews.values():
            diagnostics.extend(preview.diagnostics)
        unique = tuple(sorted(set(diagnostics), key=sort_key))
        return SiteReport(len(previews), tuple(rebuilt), tuple(written), unique)

    def preview_for(self, path: Path) -> CardPreview | None:
        """The current preview of a card file (as `load_content` names it)."""
        entry = self._previews.get(path)
        return entry[1] if entry else None

    def file(self, name: str) -> bytes | None:
        """The bytes of a site file this site wrote (a relative name such as 'cards/t/x.html'), or None.

        The server serves only these, from memory: never a file someone else put in the folder.
        """
        return self._pages.get(name)

    def _cross_card_problems(self) -> dict[Path, Diagnostic]:
        """Problems between cards (a shared id), by the card file whose page shows them."""
        cards = [p.card for _, p in self._previews.values() if p.card is not None]
        return {d.location.path: d for d in check_unique_ids(cards)}

    def _site_files(
        self, content: Content | None, load_problems: tuple[Diagnostic, ...], cross: dict[Path, Diagnostic]
    ) -> dict[str, bytes]:
        deckset = content.deckset if content else None
        deck_names = {t.key: deckset.deck_name(t) for t in deckset.topics} if deckset else {}
        files: dict[str, bytes] = {SHELL_CSS: PREVIEW_CSS.encode(), SHELL_JS: PREVIEW_JS.encode()}
        previews = [preview for _, preview in self._previews.values()]
        for preview in previews:
            extra = (cross[preview.source],) if preview.source in cross else ()
            files[preview.page] = self._page_bytes(preview, deck_names.get(preview.topic, preview.topic), extra)
        files[INDEX] = index_page(deckset, previews, load_problems, self._index_entry).encode()
        return files

    def _index_entry(self, preview: CardPreview) -> str:
        cached = self._entry_cache.get(preview.page)
        if cached is None or cached[0] is not preview:
            cached = self._entry_cache[preview.page] = (preview, index_entry(preview))
        return cached[1]

    def _page_bytes(self, preview: CardPreview, deck_name: str, extra: tuple[Diagnostic, ...]) -> bytes:
        # Pages are regenerated only when their preview or its context changed.
        cached = self._page_cache.get(preview.page)
        if cached is not None and cached[0] is preview and cached[1:3] == (deck_name, extra):
            return cached[3]
        data = card_page(preview, deck_name, extra).encode()
        self._page_cache[preview.page] = (preview, deck_name, extra, data)
        return data

    def _write(self, files: dict[str, bytes]) -> list[str]:
        changed = sorted(name for name, data in files.items() if self._pages.get(name) != data)
        gone = sorted(set(self._pages) - set(files))
        if changed and not set(changed) <= self._made:
            self._made.update(changed)
            self._write_manifest()  # first: a crash part-way must not leave files it cannot clean up
        for name in changed:
            if not _is_site_name(name):
                raise PreviewError(f"refusing to write {name!r}: not a name the preview makes")
            target = self._checked_path(name)
            self._make_folders(target.parent)
            write_atomic(target, files[name])
            self._pages[name] = files[name]
        for name in gone:  # a deleted card's page
            self._delete(name)
            del self._pages[name]
        if gone:
            self._made.difference_update(gone)
            self._write_manifest()
        return [*changed, *gone]

    def _checked_path(self, name: str) -> Path:
        """`out_dir / name`, refusing any symlink on the way (a folder or the file itself)."""
        target = self.out_dir / name
        link = _symlink_in(target)
        if link is not None:
            raise PreviewError(f"refusing to write through the symlink {link}")
        return target

    def _make_folders(self, folder: Path) -> None:
        link = _symlink_in(folder)
        if link is not None:
            raise PreviewError(f"refusing to write through the symlink {link}")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # One level at a time below the site folder, each checked to be a real folder.
        for parent in [*reversed(folder.relative_to(self.out_dir).parents), folder.relative_to(self.out_dir)]:
            path = self.out_dir / parent
            try:
                path.mkdir()
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    raise PreviewError(f"refusing to write through {path}: not a folder") from None

    def _write_manifest(self) -> None:
        target = self._checked_path(MARKER_FILE)
        self._make_folders(self.out_dir)
        write_atomic(target, ("\n".join([MARKER_HEADER, *sorted(self._made)]) + "\n").encode())

    def _delete(self, name: str) -> None:
        """Delete a file this command wrote, and the folders it leaves empty; never through a symlink."""
        if not _is_site_name(name):
            return
        target = self.out_dir / name
        if _symlink_in(target) is not None:
            raise PreviewError(f"refusing to delete through the symlink {_symlink_in(target)}")
        try:
            if stat.S_ISREG(os.lstat(target).st_mode):
                target.unlink()
        except FileNotFoundError:
            return
        for folder in target.relative_to(self.out_dir).parents:
            if folder == Path("."):
                break
            try:
                (self.out_dir / folder).rmdir()  # only when empty: never what someone else put there
            except OSError:
                break

    def _claim_folder(self) -> None:
        """Refuse a folder that holds anything but an earlier preview, or that is reached through a symlink."""
        folder = self.out_dir
        link = _symlink_in(folder)
        if link is not None:
            raise PreviewError(f"refusing to write through the symlink {link}")
        if folder.exists() and not folder.is_dir():
            raise PreviewError(f"{folder} is not a folder")
        if not folder.is_dir() or not any(folder.iterdir()):
            return
        # A symlink anywhere in the folder was put there by someone else: the site is never
        # written or served through one, so say which it is now rather than half-way through.
        for parent, folders, files in os.walk(folder):
            for name in sorted([*folders, *files]):
                if os.path.islink(os.path.join(parent, name)):
                    raise PreviewError(f"refusing to write through the symlink {Path(parent) / name}")
        marker = folder / MARKER_FILE
        link = _symlink_in(marker)
        if link is not None:
            raise PreviewError(f"refusing to read through the symlink {link}")
        if not marker.is_file():
            raise PreviewError(f"{folder} is not empty and holds no earlier preview: choose another --out folder")
        lines = marker.read_text(encoding="utf-8", errors="replace").splitlines()
        # A manifest names only files the preview makes inside this folder; anything else is ignored.
        self._made = {line for line in lines[1:] if _is_site_name(line)}
