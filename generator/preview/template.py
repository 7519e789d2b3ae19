"""Fill a note type's card templates the way Anki does, for the preview.

Covers what the project's templates use: `{{Field}}`, `{{FrontSide}}`,
`{{cloze:Field}}` and `{{#Field}}…{{/Field}}` / `{{^Field}}…{{/Field}}`
sections. Cloze output copies Anki's markup: the active deletion becomes
`<span class="cloze" data-cloze="…">[...]</span>` (or `[hint]`) on the
question and `<span class="cloze">…</span>` on the answer, other deletions
`<span class="cloze-inactive">…</span>`, and any markup inside a formula is
stripped so that MathJax (or the preview's MathML) sees plain TeX.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from generator.cards.cloze import Node, read_clozes

SECTION = re.compile(r"\{\{([#^])([^{}]+?)\}\}(.*?)\{\{/\2\}\}", re.DOTALL)
REPLACEMENT = re.compile(r"\{\{(?:(\w+):)?([^{}#^/]+?)\}\}")
MATHJAX = re.compile(r"(\\[(\[])(.*?)(\\[)\]])", re.DOTALL)
TAG = re.compile(r"<[^>]*>")
FRONT_SIDE = "FrontSide"


class TemplateError(ValueError):
    """The template uses something the preview does not know (a project bug, not a card's)."""


def render_template(
    template: str,
    fields: Mapping[str, str],
    *,
    cloze_ordinal: int | None = None,
    question: bool = True,
    front_side: str = "",
) -> str:
    """One side of one card: `template` filled from `fields`.

    `cloze_ordinal` is the card's deletion number (cloze note types only);
    `front_side` the rendered question, for `{{FrontSide}}` on the answer.
    """

    def section(match: re.Match[str]) -> str:
        kind, name, body = match.groups()
        shown = bool(_field(fields, name.strip()).strip())
        return body if shown == (kind == "#") else ""

    def replace(match: re.Match[str]) -> str:
        filter_name, name = match.group(1), match.group(2).strip()
        if name == FRONT_SIDE and filter_name is None:
            return front_side
        value = _field(fields, name)
        if filter_name is None:
            return value
        if filter_name == "cloze" and cloze_ordinal is not None:
            return render_cloze(value, cloze_ordinal, question=question)
        raise TemplateError(f"unsupported template filter '{filter_name}'")

    return REPLACEMENT.sub(replace, SECTION.sub(section, template))


def render_cloze(text: str, ordinal: int, *, question: bool) -> str:
    """`{{cloze:Field}}` for card `ordinal`; empty when that deletion is absent (Anki makes no card)."""
    nodes = read_clozes(text).nodes
    pieces: list[str] = []
    found = _reveal(nodes, ordinal, question, pieces)
    if not found:
        return ""
    return MATHJAX.sub(lambda m: m.group(1) + TAG.sub("", m.group(2)) + m.group(3), "".join(pieces))


def _reveal(nodes: tuple[Node, ...], ordinal: int, question: bool, out: list[str]) -> bool:
    """Append the side's HTML for `nodes`; say whether the active deletion was among them."""
    found = False
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
            continue
        active = node.ordinal == ordinal
        found = found or active
        if active and question:
            content: list[str] = []
            _reveal(node.nodes, ordinal, question, content)
            out.append(
                f'<span class="cloze" data-cloze="{_encode_attribute("".join(content))}" '
                f'data-ordinal="{node.ordinal}">[{node.hint or "..."}]</span>'
            )
            continue
        out.append(f'<span class="{"cloze" if active else "cloze-inactive"}" data-ordinal="{node.ordinal}">')
        found = _reveal(node.nodes, ordinal, question, out) or found
        out.append("</span>")
    return found


def _encode_attribute(text: str) -> str:
    """Anki's attribute encoding: every character but ASCII letters and digits as `&#xHH;`."""
    return "".join(c if c.isascii() and c.isalnum() else f"&#x{ord(c):X};" for c in text)


def _field(fields: Mapping[str, str], name: str) -> str:
    if name not in fields:
        raise TemplateError(f"template uses unknown field '{name}'")
    return fields[name]
