"""Typeset the TeX of a card side as MathML, so the preview needs no network and no script.

The fields hold `\\(…\\)` and `\\[…\\]` with the TeX HTML-escaped, as MathJax
reads them in Anki. Like MathJax, formulas inside `<pre>`, `<code>` and the
like are left alone. A formula latex2mathml cannot convert, or converts with
a command it does not know, is shown as its raw TeX in a `math-error` element
with the reason.

latex2mathml copies the text of `\\text{…}` and the arguments of `\\href`,
`\\style` or `\\color` into its output unescaped. So its string is never used:
the converter's element tree is walked and written out again through an
allow-list of MathML elements and attribute values, every text escaped; a
formula with anything outside the list is shown as its (escaped) TeX.
"""

from __future__ import annotations

import html
import inspect
import re
from dataclasses import dataclass
from xml.etree.ElementTree import Element

from latex2mathml import exceptions as latex_errors
from latex2mathml.converter import convert_to_element

MATH = re.compile(r"\\\((.*?)\\\)|\\\[(.*?)\\\]", re.DOTALL)
# A tag (quoted attribute values may hold '>') or a comment.
MARKUP = re.compile(r"""(<!--.*?-->|<(?:[^>"']|"[^"]*"|'[^']*')*>)""", re.DOTALL)
TAG_NAME = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)")
# MathJax's default skipHtmlTags.
SKIPPED_ELEMENTS = frozenset({"script", "noscript", "style", "textarea", "pre", "code", "annotation", "math"})
# latex2mathml keeps a command it does not know as the text of a token element.
UNKNOWN_COMMAND = re.compile(r"\\[A-Za-z]+")
TOKEN_ELEMENTS = frozenset({"mi", "mn", "mo"})
# latex2mathml lays out `align*` as a table but not `aligned`, the form used inside a
# formula; within one display formula both align the same way.
ENVIRONMENT_ALIASES = {r"\begin{aligned}": r"\begin{align*}", r"\end{aligned}": r"\end{align*}"}
# An alignment '&' that latex2mathml left as text: an environment it does not lay out.
STRAY_ALIGNMENT = "&"
MATHML_NAMESPACE = "http://www.w3.org/1998/Math/MathML"

# What latex2mathml writes for the TeX the cards use, and nothing that can
# link, style with CSS, name an id or class, or load anything.
MATHML_ELEMENTS = frozenset(
    {
        "math", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msub", "msup", "msubsup",
        "mfrac", "msqrt", "mroot", "mstyle", "mtable", "mtr", "mtd", "mlabeledtr", "mover", "munder",
        "munderover", "mpadded", "mphantom", "menclose", "mmultiscripts", "mprescripts", "none",
    }
)  # fmt: skip
_BOOLEAN = re.compile(r"true|false")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)"
_LENGTH = rf"{_NUMBER}(?:em|ex|pt|px|mu|in|cm|mm|pc|%|width|height)?|[a-z]*mathspace"
_LENGTHS = re.compile(rf"(?:{_LENGTH})(?:\s+(?:{_LENGTH}))*")
_WORDS = re.compile(r"[a-z-]+(?:\s+[a-z-]+)*")
# A colour name or #hex only: no url(), no CSS functions.
_COLOUR = re.compile(r"[A-Za-z]+|#[0-9A-Fa-f]{3,8}")
MATHML_ATTRIBUTES: dict[str, re.Pattern[str]] = {
    "display": re.compile(r"block|inline"),
    "displaystyle": _BOOLEAN,
    "scriptlevel": re.compile(r"[-+]?\d"),
    "mathvariant": _WORDS,
    "mathsize": _LENGTHS,
    "mathcolor": _COLOUR,
    "mathbackground": _COLOUR,
    "stretchy": _BOOLEAN,
    "fence": _BOOLEAN,
    "separator": _BOOLEAN,
    "accent": _BOOLEAN,
    "accentunder": _BOOLEAN,
    "largeop": _BOOLEAN,
    "movablelimits": _BOOLEAN,
    "symmetric": _BOOLEAN,
    "form": re.compile(r"prefix|infix|postfix"),
    "lspace": _LENGTHS,
    "rspace": _LENGTHS,
    "minsize": _LENGTHS,
    "maxsize": _LENGTHS,
    "width": _LENGTHS,
    "height": _LENGTHS,
    "depth": _LENGTHS,
    "voffset": _LENGTHS,
    "linethickness": _LENGTHS,
    "rowspacing": _LENGTHS,
    "columnspacing": _LENGTHS,
    "framespacing": _LENGTHS,
    "columnalign": _WORDS,
    "rowalign": _WORDS,
    "columnlines": _WORDS,
    "rowlines": _WORDS,
    "frame": _WORDS,
    "notation": _WORDS,
    "linebreak": _WORDS,
    "equalrows": _BOOLEAN,
    "equalcolumns": _BOOLEAN,
}
# latex2mathml writes symbols as character references inside its text.
CHARACTER_REFERENCE = re.compile(r"&#(?:x([0-9A-Fa-f]{1,6})|([0-9]{1,7}));")
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
        tree = convert_to_element(tex, display="block" if display else "inline")
    except CONVERSION_ERRORS as exc:
        raise ValueError(_describe(exc)) from exc
    out: list[str] = []
    _write_element(tree, out)
    return "".join(out)


def _write_element(element: Element, out: list[str]) -> None:
    """Write `element` as MathML, or raise ValueError for anything outside the allow-list."""
    tag = element.tag
    if tag not in MATHML_ELEMENTS:
        raise ValueError(f"the converter wrote <{tag}>, which the preview does not show")
    text = _text(element.text)
    if tag in TOKEN_ELEMENTS and (unknown := UNKNOWN_COMMAND.fullmatch(text)):
        raise ValueError(f"unsupported command {unknown.group(0)}")
    if tag == "mi" and text == STRAY_ALIGNMENT:
        raise ValueError("'&' outside an environment the converter lays out (aligned, align*, cases, matrix, array)")
    attributes = [f' xmlns="{MATHML_NAMESPACE}"'] if tag == "math" else []
    for name, value in element.attrib.items():
        if name == "xmlns" and tag == "math":
            continue  # written above, with the one namespace allowed
        pattern = MATHML_ATTRIBUTES.get(name)
        if pattern is None or not pattern.fullmatch(value):
            raise ValueError(f"the converter wrote {name}={value!r}, which the preview does not show")
        attributes.append(f' {name}="{html.escape(value)}"')
    out.append(f"<{tag}{''.join(attributes)}>{html.escape(text, quote=False)}")
    for child in element:
        _write_element(child, out)
        out.append(html.escape(_text(child.tail), quote=False))
    out.append(f"</{tag}>")  # never self-closing: an HTML page reads '<mo/>' as an open tag outside <math>


def _text(text: str | None) -> str:
    """The characters latex2mathml means: its character references decoded, the rest as it stands."""
    if not text:
        return ""

    def decode(match: re.Match[str]) -> str:
        code = int(match.group(1), 16) if match.group(1) else int(match.group(2))
        return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"

    return CHARACTER_REFERENCE.sub(decode, text)


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
