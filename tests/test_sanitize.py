"""The HTML policy: what the renderer makes survives the sanitiser unchanged; nothing else gets through."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.cards import sanitize as sanitize_module
from generator.cards.render import render_markdown
from generator.cards.sanitize import policy_violations, sanitize

PATH = Path("alpha/card.md")


def rendered(text: str, *, cloze: bool = False) -> str:
    html, _media, problems = render_markdown(text, PATH, 1, cloze=cloze)
    assert problems == []
    return html


def test_code_math_cloze_and_tables_survive_unchanged() -> None:
    text = (
        "Use `x < y` and $\\frac{a}{b} < 1$, then:\n\n$$\\sum_{i=1}^{n} x_i$$\n\n"
        "```python\nprint('a' < \"b\" & True)\n```\n\n"
        "| left | right |\n|:---|---:|\n| 1 | 2 |\n\n"
        "A <kbd>Ctrl</kbd>+<kbd>C</kbd>, H<sub>2</sub>O, x<sup>2</sup>, "
        "[docs](https://keras.io/)\n\n<details><summary>More</summary>hidden</details>\n"
    )
    html = rendered(text)
    assert sanitize(html) == sanitize(sanitize(html))  # idempotent
    assert policy_violations(html, sanitize(html)) == []
    for piece in (
        'class="highlight language-python"',
        "\\(\\frac{a}{b} &lt; 1\\)",
        "\\[\\sum_{i=1}^{n} x_i\\]",
        'style="text-align:left"',
        "<kbd>Ctrl</kbd>",
        'href="https://keras.io/"',
        "<summary>More</summary>",
    ):
        assert piece in html  # fmt: skip
    cloze = rendered("The {{c1::softmax}} of {{c2::$x^{2}$}}.", cloze=True)
    assert "{{c1::softmax}}" in cloze and "{{c2::\\(x^{2}\\)}}" in cloze


def test_each_forbidden_construct_is_named() -> None:
    cases = {
        "<script>alert(1)</script>": "HTML tag <script> is not allowed",
        "<img src=x onerror=alert(1)>": "attribute 'onerror' on <img> is not allowed",
        '<a href="javascript:alert(1)">x</a>': (
            "link target 'javascript:alert(1)' is not allowed: links must start with http:, https: or mailto:"
        ),
        '<p style="position:fixed">x</p>': "attribute 'style' on <p> is not allowed",
        "<!-- note -->": "an HTML comment would be dropped from the deck",
    }
    for html, message in cases.items():
        cleaned = sanitize(html)
        assert "alert" not in cleaned and "javascript" not in cleaned and "style" not in cleaned
        assert [m for m, _needle in policy_violations(html, cleaned)] == [message]


HOSTILE_ALPHABET = list("<>/=\"' abcimgsrcipton:&;{}$\\`*-_[]()#\n\x00é")


class _Attributes(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.extend((tag, name, value or "") for name, value in attrs)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(HOSTILE_ALPHABET), max_size=300))
def test_no_markup_escapes_the_policy(text: str) -> None:
    html, _media, _problems = render_markdown(text, PATH, 1)
    parser = _Attributes()
    parser.feed(html)
    assert "<script" not in html.lower()
    for tag, name, value in parser.seen:
        assert not name.startswith("on"), (tag, name)
        assert name != "href" or value.partition(":")[0].lower() in ("http", "https", "mailto") or ":" not in value


IMAGE_TOKENS = [
    "<img src=a.png>", "<IMG SRC=b.png>", "<image src=c.png>", "<ImAgE sRc='d.png'/>", "<svg><image href=e.png>",
    "<im", "g src=f.png>", "<p>", "</p>", "<span class=x>", "text", " ", "<", ">", "=", "'", '"', "&lt;img", "<!--",
    "-->", "<math><mi>", "<table><tr><td>", "\n",
]  # fmt: skip


def _always_through_the_image_filter(html: str, rewrite: sanitize_module.SrcRewriter) -> str:
    sanitize_module._rewrite_src = rewrite
    try:
        return sanitize_module._cleaner().clean(html)
    finally:
        sanitize_module._rewrite_src = None


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(IMAGE_TOKENS), max_size=30).map("".join))
def test_a_field_that_skips_the_image_filter_is_cleaned_the_same(html: str) -> None:
    # Fields without '<im' skip the per-attribute Python filter: every image the parser can find is still renamed.
    def rename(src: str) -> str:
        return f"renamed-{src}"

    assert sanitize(html, rename) == _always_through_the_image_filter(html, rename)
