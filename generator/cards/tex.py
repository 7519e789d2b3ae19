"""The TeX a card may hand to MathJax: an allow-list of control sequences and environments.

Anki typesets `\\(…\\)` and `\\[…\\]` with MathJax's full TeX build, whose
packages can make links (`\\href`), carry CSS (`\\style`, `\\bbox`, `\\class`),
define macros (`\\def`) or load more code (`\\require`). So math is content like
any other: only commands that draw mathematics pass. The check runs twice, on
purpose: on each formula of the Markdown source (a located error for the
author) and on the text MathJax will actually see in every finished field, so
a formula that reaches a field another way (an HTML entity, a Markdown escape,
a cache entry) is caught too.
"""

from __future__ import annotations

import bisect
import re
from html import unescape
from html.parser import HTMLParser

from generator.diagnostics import visible

TEX_HINT = "math may use only the commands listed under 'Math in cards' in content/README.md"

GREEK = (
    "alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa varkappa lambda mu nu xi "
    "pi varpi rho varrho sigma varsigma tau upsilon phi varphi chi psi omega "
    "Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega digamma"
)
SYMBOLS = (
    # binary operators and relations
    "pm mp times div cdot ast star circ bullet odot oplus otimes ominus oslash setminus wedge vee cap cup "
    "sqcap sqcup uplus amalg dagger ddagger wr diamond bigcirc triangleleft triangleright "
    "le leq ge geq ne neq approx sim simeq cong equiv propto ll gg prec succ preceq succeq subset supset "
    "subseteq supseteq sqsubseteq sqsupseteq in notin ni mid nmid parallel perp models vdash dashv asymp "
    "doteq lesssim gtrsim leqslant geqslant coloneqq eqqcolon triangleq not "
    # arrows
    "to gets leftarrow rightarrow leftrightarrow Leftarrow Rightarrow Leftrightarrow longleftarrow "
    "longrightarrow longleftrightarrow Longleftarrow Longrightarrow Longleftrightarrow mapsto longmapsto "
    "uparrow downarrow updownarrow Uparrow Downarrow Updownarrow nearrow searrow swarrow nwarrow "
    "hookleftarrow hookrightarrow leftharpoonup rightharpoonup rightleftharpoons implies impliedby iff "
    "xrightarrow xleftarrow "
    # miscellaneous symbols
    "infty partial nabla forall exists nexists emptyset varnothing neg lnot top bot angle ell hbar imath "
    "jmath Re Im aleph wp prime backslash surd triangle Box square checkmark dots ldots cdots vdots ddots "
    "colon "
    # big operators and named functions
    "sum prod coprod int iint iiint oint bigcup bigcap bigoplus bigotimes bigodot bigvee bigwedge "
    "sin cos tan cot sec csc arcsin arccos arctan sinh cosh tanh coth exp log ln lg max min sup inf lim "
    "liminf limsup arg det dim gcd hom ker Pr deg operatorname limits nolimits "
    # delimiters and their sizes
    "left right middle big Big bigg Bigg bigl bigr Bigl Bigr biggl biggr Biggl Biggr "
    "langle rangle lfloor rfloor lceil rceil lvert rvert lVert rVert vert Vert lbrace rbrace "
    "lbrack rbrack "
    # accents, fractions, roots, decorations
    "hat widehat tilde widetilde bar overline underline vec dot ddot acute grave breve check mathring "
    "overbrace underbrace overset underset stackrel frac dfrac tfrac cfrac binom dbinom tbinom sqrt "
    "overrightarrow overleftarrow boxed cancel substack "
    # fonts and text
    "mathrm mathbf mathit mathsf mathtt mathcal mathbb mathfrak mathscr boldsymbol pmb "
    "text textrm textbf textit texttt textsf mbox "
    "displaystyle textstyle scriptstyle scriptscriptstyle "
    # spacing and structure
    "quad qquad thinspace enspace negthinspace phantom hphantom vphantom smash hline "
    "begin end"
)
# Every command here typesets without error, link or outside style in Anki's own MathJax
# (tests/test_tex_mathjax.py); `\argmax`, `\bm` and `\cline` are not MathJax commands.
ALLOWED_COMMANDS = frozenset(f"{GREEK} {SYMBOLS}".split())
# Control symbols: `\,` `\;` `\:` `\!` and `\ ` are spaces, `\\` a new row, the rest literal characters.
ALLOWED_SYMBOLS = frozenset(",;:! \\{}_%$&#|")
ALLOWED_ENVIRONMENTS = frozenset(
    {
        "matrix", "pmatrix", "bmatrix", "Bmatrix", "vmatrix", "Vmatrix", "smallmatrix",
        "cases", "aligned", "alignedat", "gathered", "split", "array", "subarray",
    }
)  # fmt: skip

_CONTROL = re.compile(r"\\([A-Za-z]+|.|$)", re.DOTALL)
_ENVIRONMENT = re.compile(r"\s*\{([^{}]*)\}")


def tex_problems(tex: str) -> list[tuple[int, str]]:
    """Every command or environment in `tex` outside the allow-list, as (offset in `tex`, message)."""
    problems: list[tuple[int, str]] = []
    for match in _CONTROL.finditer(tex):
        name = match.group(1)
        if name.isalpha() and name.isascii():
            if name not in ALLOWED_COMMANDS:
                problems.append((match.start(), f"TeX command '\\{name}' is not allowed in math"))
            elif name in ("begin", "end"):
                environment = _ENVIRONMENT.match(tex, match.end())
                if environment is None:
                    problems.append((match.start(), f"'\\{name}' must name an environment in braces"))
                elif environment.group(1).strip() not in ALLOWED_ENVIRONMENTS:
                    shown = visible(environment.group(1))
                    problems.append((match.start(), f"TeX environment '{shown}' is not allowed in math"))
        elif name not in ALLOWED_SYMBOLS:
            problems.append((match.start(), f"TeX command '\\{visible(name)}' is not allowed in math"))
    return problems


# --- what MathJax sees in a finished field ---------------------------------------------------

# MathJax skips these elements' text (its default `skipHtmlTags`, which Anki keeps).
_SKIPPED = frozenset({"script", "noscript", "style", "textarea", "pre", "code", "annotation", "annotation-xml"})
_OPENERS = {"\\(": "\\)", "\\[": "\\]"}  # Anki's delimiters: no `$`


def field_tex_problems(html: str, *, canonical: bool = False) -> list[str]:
    """Problems of every formula MathJax could typeset in the field `html`.

    `canonical`: the sanitiser leaves `html` unchanged, so it is in the
    serialiser's form and is read without an HTML parser (see `typeset_text`).

    Every `\\(` or `\\[` starts a formula that runs to the next matching closer
    (or the end); overlapping candidates are merged. Text is joined across
    inline elements, which MathJax does not do. So the check sees a superset
    of what MathJax would: it may refuse, never miss. Linear in the field.
    """
    if "\\" not in html and ("&" not in html or "\\" not in unescape(html)):
        # The text's backslashes are written as such or as character references (decoded the same way
        # here, over the whole field: a superset of the text): without one, no formula, no parse.
        return []
    text = typeset_text(html, canonical=canonical)
    if "\\" not in text:
        return []
    closers = {closer: [m.start() for m in re.finditer(re.escape(closer), text)] for closer in _OPENERS.values()}
    regions: list[list[int]] = []
    for match in re.finditer(r"\\[(\[]", text):
        positions = closers[_OPENERS[match.group()]]
        after = bisect.bisect_left(positions, match.end())
        end = positions[after] if after < len(positions) else len(text)
        if regions and match.start() <= regions[-1][1]:
            regions[-1][1] = max(regions[-1][1], end)
        else:
            regions.append([match.end(), end])
    problems: list[str] = []
    for start, end in regions:
        tex = _DELIMITER.sub(" ", text[start:end])
        problems.extend(message for _offset, message in tex_problems(tex))
    return problems


_DELIMITER = re.compile(r"\\[()\[\]]")
# A tag as the sanitiser's serialiser writes it: a lower-case name, then attributes with double-quoted
# values in which '"' is written '&quot;'. Its text holds no '<' and it has no comments.
_CANONICAL_TAG = re.compile(r'<(/?)([a-z][^\s/>]*)(?:\s+[^\s"=<>/]+(?:="[^"]*")?)*\s*/?>')


def typeset_text(html: str, *, canonical: bool = False) -> str:
    """The text MathJax scans in `html`: character references decoded, skipped elements left out.

    A canonical field (one the sanitiser leaves unchanged) is read with one
    regular expression, the same reading as the HTML parser's at a fraction of
    its cost; any other field goes through the parser.
    """
    if not canonical:
        return _TypesetText.of(html)
    parts = []
    skipping = 0
    position = 0
    for tag in _CANONICAL_TAG.finditer(html):
        if not skipping:
            parts.append(unescape(html[position : tag.start()]))
        position = tag.end()
        if tag.group(2) in _SKIPPED:
            if not tag.group(1):
                skipping += 1
            elif skipping:
                skipping -= 1
    if not skipping:
        parts.append(unescape(html[position:]))
    return "".join(parts)


class _TypesetText(HTMLParser):
    """The text MathJax scans: character references decoded, skipped elements left out."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    @classmethod
    def of(cls, html: str) -> str:
        parser = cls()
        parser.feed(html)
        parser.close()
        return "".join(parser.parts)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self.skipping += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED and self.skipping:
            self.skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)
