"""The TeX allow-list: every formula of the cards passes, nothing that links, styles or defines does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.cards.scan import Math, scan
from generator.cards.tex import ALLOWED_COMMANDS, ALLOWED_ENVIRONMENTS, field_tex_problems, tex_problems

CONTENT = Path(__file__).resolve().parents[1] / "content"
# What MathJax's html, bbox, action, newcommand, require, unicode and enclose packages add.
DANGEROUS = (
    "href", "url", "style", "class", "cssId", "bbox", "data", "html", "require", "unicode", "def", "gdef",
    "edef", "newcommand", "renewcommand", "let", "newenvironment", "toggle", "mathtip", "texttip", "color",
    "colorbox", "fcolorbox", "enclose", "mmlToken", "tag", "label", "ref", "eqref", "ce", "input", "include",
)  # fmt: skip


@pytest.mark.parametrize("name", DANGEROUS)
def test_commands_that_link_style_or_define_are_refused(name: str) -> None:
    assert name not in ALLOWED_COMMANDS
    assert tex_problems(f"x + \\{name}{{a}}{{b}}") == [(4, f"TeX command '\\{name}' is not allowed in math")]


def test_every_formula_on_the_cards_passes() -> None:
    formulas = []
    for path in sorted(CONTENT.glob("*/*.md")):
        segments, _ = scan(path.read_text(encoding="utf-8"), path, 1)
        formulas += [s.tex for s in segments if isinstance(s, Math)]
    assert len(formulas) > 100
    assert [(tex, problems) for tex in formulas if (problems := tex_problems(tex))] == []


def test_environments_are_checked_by_name() -> None:
    assert tex_problems(r"\begin{bmatrix} a \end{bmatrix}") == []
    assert [m for _, m in tex_problems(r"\begin {html} a \end{html}")] == [
        "TeX environment 'html' is not allowed in math",
        "TeX environment 'html' is not allowed in math",
    ]
    assert tex_problems(r"\begin x") == [(0, "'\\begin' must name an environment in braces")]


def test_control_symbols_and_non_ascii_names() -> None:
    assert tex_problems(r"a\,b\;c\!d\\e\{f\}") == []
    assert tex_problems("\\\x1b") == [(0, "TeX command '\\\\x1b' is not allowed in math")]
    assert tex_problems("\\é") == [(0, "TeX command '\\é' is not allowed in math")]


# --- a generated fuzz: a formula passes exactly when every command in it is allowed -------------

names = st.one_of(
    st.sampled_from(sorted(ALLOWED_COMMANDS - {"begin", "end"})),  # environments are drawn below
    st.sampled_from(DANGEROUS),
    st.text(alphabet=st.characters(min_codepoint=0x41, max_codepoint=0x7A), min_size=1, max_size=8).filter(str.isalpha),
)
pieces = st.one_of(
    names.map(lambda name: f"\\{name} "),
    st.sampled_from([*sorted(ALLOWED_ENVIRONMENTS), "html", "evil"]).map(lambda e: f"\\begin{{{e}}}x\\end{{{e}}}"),
    st.text(alphabet="xy+-=^_{}()[]0123456789 ,;&", max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(pieces, max_size=12).map("".join))
def test_fuzz_a_formula_passes_exactly_when_all_its_commands_are_allowed(tex: str) -> None:
    commands = re.findall(r"\\([A-Za-z]+)", tex)
    environments = re.findall(r"\\(?:begin|end)\{([^{}]*)\}", tex)
    expected_ok = all(c in ALLOWED_COMMANDS for c in commands) and all(e in ALLOWED_ENVIRONMENTS for e in environments)
    assert (tex_problems(tex) == []) == expected_ok
    # The field check sees the same formula inside HTML, however it is delimited.
    assert (field_tex_problems(f"<p>a \\({tex}\\) b</p>") == []) == expected_ok


# --- what MathJax reads in a finished field ------------------------------------------------------


@pytest.mark.parametrize(
    "html",
    [
        r"<p>\(\href{javascript:alert(1)}{x}\)</p>",
        r"<p>&#92;(\style{color:red}{x}&#92;)</p>",  # a character reference is text to MathJax
        r"<p>\(<em>\class{a}{b}</em>\)</p>",  # joined across inline elements
        r"<p>\[\bbox[red]{x}</p><p>later \]</p>",
        r"<p>\(x\) and \(\require{html}</p>",  # an opener without a closer still opens
        r"<p>\\(\cssId{a}{b}\)</p>",  # a doubled backslash before '(' still starts math
    ],
)
def test_unsafe_math_in_a_field_is_found_however_it_got_there(html: str) -> None:
    assert field_tex_problems(html) != []


@pytest.mark.parametrize(
    "html",
    [
        r"<p>\(\frac{a}{b}\) and \[\sum_i x_i\]</p>",
        r"<pre><code>\href{x}{y} \(\style{a}{b}\)</code></pre>",  # MathJax skips code
        r"<p>Plain \ text with C:\Users</p>",
    ],
)
def test_safe_fields_pass(html: str) -> None:
    assert field_tex_problems(html) == []


def test_the_field_check_is_linear() -> None:
    html = "<p>" + r"\( \alpha " * 20_000 + "</p>"
    assert field_tex_problems(html) == []


html_pieces = st.sampled_from(
    [
        "<p>", "</p>", "<code>", "</code>", "<pre>", "</pre>", "<span class=\"k\">", "</span>", "<br>",
        '<a href="https://x.org/?a=1&amp;b=>">', "</a>", '<td style="text-align: left;">', "<table>", "</table>",
        "\\(", "\\)", "\\[", "\\]", "&#92;(", "&amp;", "&lt;", ">", "x", " ", "\n", '"', "<!-- c -->", "<b",
        "\\href{a}", "&#x5C;[",
    ]
)  # fmt: skip


@given(st.lists(html_pieces, max_size=16).map("".join))
def test_a_canonical_field_reads_the_same_without_the_html_parser(html: str) -> None:
    from generator.cards.sanitize import sanitize
    from generator.cards.tex import typeset_text

    canonical = sanitize(html)  # the serialiser's form: what every field that passes the gate is in
    assert typeset_text(canonical, canonical=True) == typeset_text(canonical)
