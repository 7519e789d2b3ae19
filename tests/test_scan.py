"""Math and code are cut out of the prose before Markdown sees them."""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.cards.scan import Fence, Math, Prose, parse_fence_info, scan

PATH = Path("card.md")


def kinds(text: str) -> list[tuple[str, str]]:
    segments, problems = scan(text, PATH, 1)
    assert problems == []
    return [
        (type(s).__name__, s.text if isinstance(s, Prose) else s.tex if isinstance(s, Math) else s.code)
        for s in segments
    ]


def test_all_four_math_delimiters() -> None:
    assert kinds(r"a $x_1$ b \(y*z\) c $$\sum$$ d \[w\]") == [
        ("Prose", "a "),
        ("Math", "x_1"),
        ("Prose", " b "),
        ("Math", "y*z"),
        ("Prose", " c "),
        ("Math", r"\sum"),
        ("Prose", " d "),
        ("Math", "w"),
    ]


def test_dollar_in_code_span_and_escaped_dollar_are_not_math() -> None:
    assert kinds(r"costs \$5 and `echo $HOME`") == [("Prose", "costs $5 and `echo $HOME`")]


def test_fences_keep_their_code_verbatim() -> None:
    segments, _ = scan("text\n\n```python\nx = '$'\n```\nmore", PATH, 10)
    fence = segments[1]
    assert isinstance(fence, Fence)
    assert (fence.info, fence.code, fence.location.line) == ("python", "x = '$'", 12)


@pytest.mark.parametrize(
    ("text", "message", "col"),
    [
        ("a $x + y", "'$' has no matching closing '$'", 3),
        ("a $$x", "'$$' is never closed", 3),
        (r"a \(x", r"'\(' is never closed", 3),
        (r"a x\]", r"'\]' has no matching '\['", 4),
        ("```python\nx = 1\n", "code block is never closed", 1),
    ],
)
def test_unbalanced_delimiters_are_located(text: str, message: str, col: int) -> None:
    _segments, problems = scan(text, PATH, 7)
    assert [(p.message, p.location.line, p.location.col) for p in problems] == [(message, 7, col)]


def test_inline_math_follows_pandoc_rules() -> None:
    # "$5 and $10" is not math: the closing $ is followed by a digit.
    _segments, problems = scan("between $5 and $10", PATH, 1)
    assert len(problems) == 2


def test_fence_info() -> None:
    assert parse_fence_info("python")[0].language == "python"
    info, _ = parse_fence_info("python no-run: TF1 only")
    assert (info.language, info.no_run) == ("python", "TF1 only")
    assert parse_fence_info("")[1] == "code block has no language"
    assert parse_fence_info("python {.x}")[1] == "unexpected text after the language: '{.x}'"
