"""The HTML policy of a note field, enforced by an allow-list sanitiser (nh3, i.e. ammonia).

Anki shows fields as HTML in a web view, so whatever reaches a field could run
as script on a reviewer's screen. Every field passes `sanitize` last: only the
tags and attributes below survive, links keep only http, https and mailto, and
`style` keeps only `text-align` (Markdown's column alignment). Authors must see
what the policy removes, so `policy_violations` names each removal; the build
turns them into located errors instead of stripping them silently.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import nh3

from generator.cards.tex import field_tex_problems

ALLOWED_TAGS = frozenset(
    {
        # text
        "p", "br", "hr", "em", "strong", "b", "i", "u", "s", "del", "ins", "mark", "small",
        "sub", "sup", "kbd", "code", "pre", "span", "div", "blockquote", "abbr",
        "h1", "h2", "h3", "h4", "h5", "h6",
        # lists and tables
        "ul", "ol", "li", "dl", "dt", "dd",
        "table", "caption", "colgroup", "col", "thead", "tbody", "tfoot", "tr", "th", "td",
        # media, links, disclosure
        "img", "a", "figure", "figcaption", "details", "summary",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "*": {"class", "title"},  # classes carry the code highlighting and cloze styling
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "th": {"style", "colspan", "rowspan", "align"},
    "td": {"style", "colspan", "rowspan", "align"},
    "ol": {"start"},
    "details": {"open"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
STYLE_PROPERTIES = frozenset({"text-align"})
# Dropped with everything inside them, not just unwrapped.
DROPPED_WITH_CONTENT = frozenset(
    {"script", "style", "iframe", "object", "embed", "template", "noscript", "svg", "math"}
)

SrcRewriter = Callable[[str], str | None]


def sanitize(html: str, rewrite_src: SrcRewriter | None = None) -> str:
    """Apply the policy; `rewrite_src` maps each `<img src>` to its packed name (None drops it)."""
    if rewrite_src is None or _MAY_HOLD_IMAGE.search(html) is None:
        return _plain_cleaner().clean(html)  # no image to rename: the same policy, without a call per attribute
    global _rewrite_src  # the prebuilt cleaner's filter reads it; one call at a time
    _rewrite_src = rewrite_src
    try:
        return _cleaner().clean(html)
    finally:
        _rewrite_src = None


_rewrite_src: SrcRewriter | None = None
# Where an <img> can come from: its start tag, or <image>, which HTML parsers read as <img> (any case).
_MAY_HOLD_IMAGE = re.compile("<im", re.IGNORECASE)


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if tag == "img" and attribute == "src" and _rewrite_src is not None:
        return _rewrite_src(value)
    return value


@functools.cache
def _cleaner() -> nh3.Cleaner:
    """The policy compiled once: building it costs more than cleaning a field."""
    return nh3.Cleaner(**_policy(), attribute_filter=_attribute_filter)


def _policy() -> dict[str, Any]:
    return {
        "tags": set(ALLOWED_TAGS),
        "clean_content_tags": set(DROPPED_WITH_CONTENT),
        "attributes": {tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        "strip_comments": True,
        "link_rel": None,
        "url_schemes": set(URL_SCHEMES),
        "filter_style_properties": set(STYLE_PROPERTIES),
    }


def field_problems(html: str) -> list[str]:
    """Why a finished field may not leave the build: what the policy would change, and unsafe math.

    Run on every field of every note, whether just rendered or read from a
    cache, so no route around the renderer reaches a deck.
    """
    canonical = _plain_cleaner().clean(html) == html
    problems = [] if canonical else ["the field holds HTML outside the policy"]
    if "{{c" in html and _ClozeInAttribute.found(html):
        # Anki writes its cloze <span> markup into the attribute and breaks the element open.
        problems.append("a cloze deletion inside an HTML attribute value")
    return problems + field_tex_problems(html, canonical=canonical)


@functools.cache
def _plain_cleaner() -> nh3.Cleaner:
    """The same policy as `_cleaner`, without its image renaming (a Python call per attribute): a third faster."""
    return nh3.Cleaner(**_policy())


class _ClozeInAttribute(HTMLParser):
    """Whether any attribute value holds a cloze marker."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hit = False

    @classmethod
    def found(cls, html: str) -> bool:
        parser = cls()
        parser.feed(html)
        parser.close()
        return parser.hit

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hit = self.hit or any(value is not None and "{{c" in value for _name, value in attrs)

    handle_startendtag = handle_starttag


def policy_violations(
    original: str, cleaned: str, src_map: dict[str, str | None] | None = None
) -> list[tuple[str, str]]:
    """What sanitising `original` into `cleaned` removed, as (message, text to locate it by).

    Both are parsed into the same event stream (so quoting and entity spelling
    do not count); `src_map` holds the image renames, which are not removals
    (None: an image already reported as unusable).
    """
    before = _events(original, src_map or {})
    after = _events(cleaned, {})
    if before == after:
        return []
    after_set = set(after)
    problems: list[tuple[str, str]] = []
    for event in before:
        if event in after_set:
            continue
        kind, name, attrs = event
        if kind == "comment":
            problems.append(("an HTML comment would be dropped from the deck", "<!--"))
        elif kind in ("start", "end") and name not in ALLOWED_TAGS:
            if kind == "start":
                problems.append((f"HTML tag <{name}> is not allowed", f"<{name}"))
        elif kind == "start":
            for attribute, value in attrs:
                problems.append(_attribute_problem(name, attribute, value))
    problems = [p for p in dict.fromkeys(problems) if p[0]]
    return problems or [("the HTML sanitiser would change this HTML", "<")]


def _attribute_problem(tag: str, attribute: str, value: str | None) -> tuple[str, str]:
    allowed = ALLOWED_ATTRIBUTES.get(tag, set()) | ALLOWED_ATTRIBUTES["*"]
    if attribute not in allowed:
        return f"attribute '{attribute}' on <{tag}> is not allowed", attribute
    if attribute == "href" and (value or "").partition(":")[0].lower() not in URL_SCHEMES:
        return f"link target '{value}' is not allowed: links must start with http:, https: or mailto:", value or "href"
    if attribute == "style" and (value or "").partition(":")[0].strip().lower() not in STYLE_PROPERTIES:
        return f"style '{value}' on <{tag}> is not allowed: only text-align is kept", value or "style"
    return "", ""  # an allowed attribute: not the cause


Event = tuple[str, str, tuple[tuple[str, str | None], ...]]


def _events(html: str, src_map: dict[str, str | None]) -> list[Event]:
    collector = _EventCollector(src_map)
    collector.feed(html)
    collector.close()
    return collector.events


class _EventCollector(HTMLParser):
    """Tags with their sorted attributes, comments and non-blank text, in document order."""

    def __init__(self, src_map: dict[str, str | None]) -> None:
        super().__init__(convert_charrefs=True)
        self.src_map = src_map
        self.events: list[Event] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            renamed = [(k, self.src_map.get(v or "", v) if k == "src" else v) for k, v in attrs]
            attrs = [(k, v) for k, v in renamed if not (k == "src" and v is None)]
        if tag in ("th", "td"):  # the sanitiser rewrites 'text-align: left;' as 'text-align:left'
            attrs = [(k, _normalise_style(v) if k == "style" else v) for k, v in attrs]
        self.events.append(("start", tag, tuple(sorted(attrs, key=lambda a: (a[0], a[1] or "")))))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        self.events.append(("end", tag, ()))

    def handle_comment(self, data: str) -> None:
        self.events.append(("comment", "", ()))

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.events.append(("text", data.strip(), ()))


def _normalise_style(style: str | None) -> str:
    return "".join((style or "").split()).rstrip(";")
