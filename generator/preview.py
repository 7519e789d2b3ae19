"""`decks preview`: a static site that shows every card the way a reviewer sees it.

Each card goes through the build's own per-card step (`compile_card`: parse,
validate, reader checks, render), so the preview shows exactly the fields and
diagnostics of a build, and then through the note type's templates as Anki
fills them. Each side is a document of its own (an iframe) with the note
type's CSS, switchable between light and night and between desktop and phone
width. Math is typeset as MathML on the way, so the site needs no network.

`preview_card` is a pure function of one source file (and the images it
names); `PreviewSite` keeps the previews and rewrites only the pages whose
card changed.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from generator.cloze import ordinals
from generator.compile import check_unique_ids, compile_card
from generator.diagnostics import Diagnostic, display_path, sort_key, summarize
from generator.load import Content, SourceFile, load_content
from generator.model import Card, CardType, DeckSet, MediaFile
from generator.notetype import NoteType, note_types
from generator.package import write_atomic
from generator.preview_assets import ANKI_READER_CSS, PREVIEW_CSS, PREVIEW_JS
from generator.preview_math import MathProblem, tex_to_mathml, typeset_math
from generator.preview_template import render_template
from generator.scan import Math, Prose, scan

MARKER_FILE = ".decks-preview"  # marks a folder this command may clean up
CARDS_DIR = "cards"
MEDIA_DIR = "media"
ASSETS_DIR = "assets"
CARD_CSS = f"{ASSETS_DIR}/card.css"
SHELL_CSS = f"{ASSETS_DIR}/preview.css"
SHELL_JS = f"{ASSETS_DIR}/preview.js"
INDEX = "index.html"
MARKDOWN_EMPHASIS = re.compile(r"[*_`]")


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
        return [(f"Cloze {n}", 0, n) for n in ordinals(fields[note_type.fields[0]])]
    if len(note_type.templates) == 1:
        return [("Card 1", 0, 1)]
    directions = ("question → answer", "answer → question")
    return [(f"{t.name}: {d}", i, i + 1) for i, (t, d) in enumerate(zip(note_type.templates, directions, strict=False))]


def _title_html(card: Card) -> str:
    """The question line with its formulas as MathML (raw TeX where they cannot be converted)."""
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
            pieces.append(html.escape(MARKDOWN_EMPHASIS.sub("", segment.text)))
    return "".join(pieces).strip()


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
            _side_frame("Question", view.question, root),
            _side_frame("Answer", view.answer, root),
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
    """The site's front page: every card by topic, with a search over questions and tags."""
    by_topic: dict[str, list[CardPreview]] = {}
    for preview in previews:
        by_topic.setdefault(preview.topic, []).append(preview)
    total = sum(len(cards) for cards in by_topic.values())
    title = deckset.name if deckset else "Cards"
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
    ]
    topics = [(t.key, t.name) for t in deckset.topics] if deckset else []
    topics += [(key, key) for key in sorted(by_topic) if key not in dict(topics)]
    for key, topic_name in topics:
        cards = sorted(by_topic.get(key, []), key=lambda p: p.title.casefold())
        parts.append(f'<section class="topic"><h2>{html.escape(topic_name)} <small>{len(cards)}</small></h2>')
        parts.append('<ul class="cards">')
        for preview in cards:
            parts.append((entry or index_entry)(preview))
        parts.append("</ul></section>")
    parts += ["</main>", f'<script src="{SHELL_JS}"></script>', "</body>", "</html>", ""]
    return "\n".join(parts)


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
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n"
        f'<link rel="stylesheet" href="{root}{SHELL_CSS}">\n</head>\n<body>'
    )


def _switches() -> str:
    return (
        '<span class="switches">'
        '<button id="theme" type="button" aria-pressed="false">Night</button>'
        '<button id="width" type="button" aria-pressed="false">Phone width</button>'
        "</span>"
    )


def side_document(side: Side, root: str) -> str:
    """A side as Anki shows it: its own document with the note type's CSS, body class 'card card<n>'.

    `root` leads from the page holding the frame to the site's top folder.
    """
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<base href="{root}{MEDIA_DIR}/"><link rel="stylesheet" href="../{CARD_CSS}"></head>'
        f'<body class="card card{side.ordinal}"><div id="qa">{side.html}</div></body></html>'
    )


def _side_frame(label: str, side: Side, root: str) -> str:
    return (
        f'<figure class="side"><figcaption>{label}</figcaption>'
        f'<iframe class="side-frame" title="{label}" srcdoc="{html.escape(side_document(side, root))}"></iframe>'
        "</figure>"
    )


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
    """The preview of a content folder, kept up to date one changed card at a time."""

    def __init__(self, content_dir: Path, out_dir: Path) -> None:
        self.content_dir = content_dir
        self.out_dir = out_dir
        self.types = note_types()
        self._previews: dict[Path, tuple[SourceFile, CardPreview]] = {}
        self._pages: dict[str, bytes] = {}  # what each written file holds
        self._page_cache: dict[str, tuple[CardPreview, str, tuple[Diagnostic, ...], bytes]] = {}
        self._entry_cache: dict[str, tuple[CardPreview, str]] = {}
        self._claim_folder()

    def build(self) -> SiteReport:
        """Build every page, and remove pages and images no card uses any more."""
        self._previews.clear()
        self._pages.clear()
        report = self.update()
        keep = {self.out_dir / name for name in self._pages}
        for folder in (self.out_dir / CARDS_DIR, self.out_dir / MEDIA_DIR):
            for path in sorted(folder.rglob("*")) if folder.is_dir() else ():
                if path.is_file() and path not in keep:
                    path.unlink()
        return report

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

    def _cross_card_problems(self) -> dict[Path, Diagnostic]:
        """Problems between cards (a shared id), by the card file whose page shows them."""
        cards = [p.card for _, p in self._previews.values() if p.card is not None]
        return {d.location.path: d for d in check_unique_ids(cards)}

    def _site_files(
        self, content: Content | None, load_problems: tuple[Diagnostic, ...], cross: dict[Path, Diagnostic]
    ) -> dict[str, bytes]:
        deckset = content.deckset if content else None
        deck_names = {t.key: deckset.deck_name(t) for t in deckset.topics} if deckset else {}
        files: dict[str, bytes] = {
            CARD_CSS: (ANKI_READER_CSS + "\n" + self.types["basic"].css).encode(),
            SHELL_CSS: PREVIEW_CSS.encode(),
            SHELL_JS: PREVIEW_JS.encode(),
            MARKER_FILE: b"Written by 'decks preview'; safe to delete.\n",
        }
        previews = [preview for _, preview in self._previews.values()]
        for preview in previews:
            extra = (cross[preview.source],) if preview.source in cross else ()
            files[preview.page] = self._page_bytes(preview, deck_names.get(preview.topic, preview.topic), extra)
            for media in preview.media:
                files[f"{MEDIA_DIR}/{media.name}"] = media.data
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
        written = []
        for name, data in sorted(files.items()):
            if self._pages.get(name) == data:
                continue
            target = self.out_dir / name
            if self._pages.get(name) is None and target.is_file() and target.read_bytes() == data:
                self._pages[name] = data
                continue
            write_atomic(target, data)
            self._pages[name] = data
            written.append(name)
        for name in sorted(set(self._pages) - set(files)):
            if name.startswith(f"{CARDS_DIR}/"):  # a deleted card; its images may serve other cards
                (self.out_dir / name).unlink(missing_ok=True)
                del self._pages[name]
                written.append(name)
        return written

    def _claim_folder(self) -> None:
        """Refuse to write into a folder that holds anything but an earlier preview."""
        folder = self.out_dir
        if folder.exists() and not folder.is_dir():
            raise PreviewError(f"{folder} is not a folder")
        if folder.is_dir() and any(folder.iterdir()) and not (folder / MARKER_FILE).is_file():
            raise PreviewError(f"{folder} is not empty and holds no earlier preview: choose another --out folder")
