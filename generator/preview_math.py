"""Typeset the TeX of a card side as MathML, so the preview needs no network and no script.

The fields hold `\\(…\\)` and `\\[…\\]` with the TeX HTML-escaped, as MathJax
reads them in Anki. Like MathJax, formulas inside `<pre>`, `<code>` and the
like are left alone. A formula latex2mathml cannot convert, or converts with
a command it does not know, is shown as its raw TeX in a `math-error` element
with the reason.
"""

from __future__ import annotations

import html
import inspect
import re
from dataclasses import dataclass

from latex2mathml import exceptions as latex_errors
from latex2mathml.converter import convert

MATH = re.compile(r"\\\((.*?)\\\)|\\\[(.*?)\\\]", re.DOTALL)
# A tag (quoted attribute values may hold '>') or a comment.
MARKUP = re.compile(r"""(<!--.*?-->|<(?:[^>"']|"[^"]*"|'[^']*')*>)""", re.DOTALL)
TAG_NAME = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)")
# MathJax's default skipHtmlTags.
SKIPPED_ELEMENTS = frozenset({"script", "noscript", "style", "textarea", "pre", "code", "annotation", "math"})
# latex2mathml keeps a command it does not know as the text of a token element.
UNKNOWN_COMMAND = re.compile(r"<m[ino]>(\\[A-Za-z]+)</m[ino]>")
# latex2mathml lays out `align*` as a table but not `aligned`, the form used inside a
# formula; within one display formula both align the same way.
ENVIRONMENT_ALIASES = {r"\begin{aligned}": r"\begin{align*}", r"\end{aligned}": r"\end{align*}"}
# An alignment '&' that latex2mathml left as text: an environment it does not lay out.
STRAY_ALIGNMENT = "<mi>&</mi>"
ERROR_CLASS = "math-error"
# latex2mathml reports bad TeX with its own exception classes, and with
# Python's built-in ones from deep inside its parser on some malformed input.
CONVERSION_ERRORS: tuple[type[Exception], ...] = (
    *(cls for _, cls in inspect.getmembers(latex_errors, inspect.isclass) if issubclass(cls, Exception)),
    LookupError,
    ValueError,
    TypeError,
    AttributeError,
    RecursionError,
    StopIteration,
)


@dataclass(frozen=True, slots=True)
class MathProblem:
    """A formula that could not be typeset, and why."""

    tex: str
    reason: str


def typeset_math(side_html: str) -> tuple[str, list[MathProblem]]:
    """Replace every formula outside code by MathML; return the HTML and the formulas that failed."""
    problems: list[MathProblem] = []
    pieces: list[str] = []
    skipped_depth = 0
    for piece in MARKUP.split(side_html):
        if piece.startswith("<"):
            pieces.append(piece)
            tag = TAG_NAME.match(piece)
            if tag and tag.group(2).lower() in SKIPPED_ELEMENTS and not piece.endswith("/>"):
                skipped_depth = max(0, skipped_depth + (-1 if tag.group(1) else 1))
        elif skipped_depth:
            pieces.append(piece)
        else:
            pieces.append(MATH.sub(lambda match: _formula(match, problems), piece))
    return "".join(pieces), problems


def tex_to_mathml(tex: str, *, display: bool) -> str:
    """MathML for one formula; raises ValueError with the reason when it cannot be converted."""
    for name, alias in ENVIRONMENT_ALIASES.items():
        tex = tex.replace(name, alias)
    try:
        mathml = convert(tex, display="block" if display else "inline")
    except CONVERSION_ERRORS as exc:
        raise ValueError(_describe(exc)) from exc
    unknown = UNKNOWN_COMMAND.search(mathml)
    if unknown:
        raise ValueError(f"unsupported command {unknown.group(1)}")
    if STRAY_ALIGNMENT in mathml:
        raise ValueError("'&' outside an environment the converter lays out (aligned, align*, cases, matrix, array)")
    return mathml


def _formula(match: re.Match[str], problems: list[MathProblem]) -> str:
    display = match.group(2) is not None
    escaped_tex = match.group(2) if display else match.group(1)
    tex = html.unescape(escaped_tex)
    try:
        return tex_to_mathml(tex, display=display)
    except ValueError as exc:
        problems.append(MathProblem(tex, str(exc)))
        element = "div" if display else "span"
        return (
            f'<{element} class="{ERROR_CLASS}" title="formula not typeset">'
            f'<code class="math-error-tex">{html.escape(html.unescape(match.group(0)), quote=False)}</code> '
            f'<span class="math-error-message">formula not typeset: {html.escape(str(exc))}</span></{element}>'
        )


def _describe(exc: Exception) -> str:
    """latex2mathml's exceptions carry their meaning in the class name ('MissingEndError')."""
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", type(exc).__name__.removesuffix("Error")).lower()
    return f"{words}: {exc}" if str(exc) else words
