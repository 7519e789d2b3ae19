"""Markdown → HTML: math intact for MathJax, code highlighted with classes."""

from __future__ import annotations

from pathlib import Path

from generator.cards.render import render_markdown, render_math
from tests.test_images import ONE_PIXEL_PNG

PATH = Path("card.md")


def render(text: str, cloze: bool = False) -> str:
    html, _media, problems = render_markdown(text, PATH, 1, cloze=cloze)
    assert problems == []
    return html


def test_math_is_not_touched_by_markdown() -> None:
    html = render(r"Here $a_1 * b_2 * c$ and $x < y$ and \(\{a\}\) and *em*")
    assert r"\(a_1 * b_2 * c\)" in html
    assert r"\(x &lt; y\)" in html  # escaped for HTML; the browser gives MathJax `<`
    assert r"\(\{a\}\)" in html
    assert "<em>em</em>" in html


def test_display_math_in_a_table_cell() -> None:
    html = render("| a | b |\n|---|---|\n| $|x|$ | $$y$$ |\n")
    assert r"<td>\(|x|\)</td>" in html
    assert r"<td>\[y\]</td>" in html


def test_code_uses_css_classes_not_inline_styles() -> None:
    html = render("```python\nimport keras  # comment\n```\n")
    assert '<div class="highlight language-python"><pre><span></span><code>' in html
    assert '<span class="kn">import</span>' in html
    assert '<span class="c1"># comment</span>' in html
    assert "style=" not in html


def test_code_inside_a_list_item() -> None:
    html = render("- step one:\n\n    ```bash\n    pip install keras\n    ```\n")
    assert "<li>" in html and "language-bash" in html


def test_cloze_math_never_contains_double_braces() -> None:
    assert render_math(r"\frac{1}{x^{2}}", False, cloze=True) == r"\(\frac{1}{x^{2} }\)"
    assert render_math("a::b", False, cloze=True) == r"\(a: :b\)"
    assert render_math(r"\frac{1}{x^{2}}", False, cloze=False) == r"\(\frac{1}{x^{2}}\)"
    html = render(r"{{c1::$\frac{a}{b^{2}}$}}", cloze=True)
    assert "{{c1::" in html and "}}" in html
    assert html.count("}}") == 1


def test_external_and_missing_images_are_errors(tmp_path: Path) -> None:
    card = tmp_path / "card.md"
    _html, _media, problems = render_markdown("![x](http://e.com/a.png)\n\n![y](gone.png)", card, 5)
    assert [(p.message, p.location.line) for p in problems] == [
        ("image 'http://e.com/a.png' is not a file next to the card", 5),
        ("image 'gone.png' not found", 7),
    ]


def test_images_get_content_hashed_names(tmp_path: Path) -> None:
    (tmp_path / "Plot.PNG").write_bytes(ONE_PIXEL_PNG)
    html, media, _ = render_markdown("![p](Plot.PNG)", tmp_path / "card.md", 1)
    # 128 bits of the SHA-256 of the bytes: a collision cannot be made to ship the wrong image
    assert media[0].name == "Plot-eaa4a94ea300e0d2c775968cbe42f0b5.png"
    assert f'src="{media[0].name}"' in html


def test_cloze_deletions_inside_math_keep_their_markers() -> None:
    assert render_math(r"J = L + {{c1::\lambda \sum_i |w_i|}}", False, cloze=True) == (
        r"\(J = L + {{c1::\lambda \sum_i |w_i|}}\)"
    )
    # A deletion ending in a TeX group gets a space, so Anki does not end it one brace early.
    assert render_math(r"{{c1::x^{2}}} + {{c2::\frac{a}{b}}}", True, cloze=True) == (
        r"\[{{c1::x^{2} }} + {{c2::\frac{a}{b} }}\]"
    )
