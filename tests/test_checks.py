"""Reader checks: each warning has a card that triggers it and a card that does not."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.cards import cloze as cloze_module
from generator.cards.checks import WORD, answer_words, reader_checks
from generator.cards.cloze import Cloze, read_clozes
from generator.cards.model import Card, CardType
from generator.cards.parse import parse_card_file
from generator.cards.validate import validate_file
from generator.diagnostics import Diagnostic

PATH = Path("/cards/alpha/card.md")


def card(body: str, card_type: CardType = "basic") -> Card:
    front_matter = f"---\nid: alpha-card\ntags: []\nsource: [s#1]\ntype: {card_type}\n---\n"
    parsed, problems = parse_card_file(PATH, front_matter + textwrap.dedent(body).lstrip("\n"))
    assert parsed is not None, problems
    result, problems = validate_file(parsed, "alpha")
    assert result is not None, [p.format() for p in problems]
    return result


def located(problems: list[Diagnostic]) -> list[str]:
    return [f"{p.location.line}:{p.location.col}: {p.severity}: {p.message}" for p in problems]


# The body starts on line 7 of the file (six front-matter lines).
LONG_LINE = "x = " + "1 + " * 20 + "1"  # 85 characters


def test_long_code_line_on_either_side_is_located() -> None:
    body = f"""
    # Which value?
    ```python
    {LONG_LINE}
    ```
    %
    ```python
    y = 2
    {LONG_LINE}
    ```
    """
    assert located(reader_checks(card(body))) == [
        "9:39: warning: code line is 85 characters long (over 38, the question side's phone budget)",
        "14:81: warning: code line is 85 characters long (over 80)",
    ]


def test_code_within_the_width_passes_and_the_width_is_a_parameter() -> None:
    body = f"# Q?\n\n```python\n{LONG_LINE[:80]}\n```\n"
    assert reader_checks(card(body)) == []
    assert located(reader_checks(card(body), max_code_line=40)) == [
        "10:41: warning: code line is 80 characters long (over 40)"
    ]


def test_cloze_answer_shown_elsewhere_on_the_same_side() -> None:
    body = """
    # Pooling

    {{c1::Max pooling}} keeps the largest value; Max pooling has no weights.
    """
    problems = reader_checks(card(body, "cloze"))
    assert located(problems) == [
        "9:1: warning: the text hidden by c1, 'Max pooling', is shown elsewhere on the same side"
    ]
    assert problems[0].hint == "reword the other mention, or hide it with c1 as well"


def test_cloze_answer_in_the_title_or_a_revealed_deletion_gives_it_away() -> None:
    in_title = "# Why ReLU\n\n{{c1::ReLU}} does not saturate for positive inputs.\n"
    assert len(reader_checks(card(in_title, "cloze"))) == 1
    in_other = "# Units\n\n{{c1::ReLU}} is cheap; {{c2::leaky ReLU}} has a slope.\n"
    assert located(reader_checks(card(in_other, "cloze"))) == [
        "9:1: warning: the text hidden by c1, 'ReLU', is shown elsewhere on the same side"
    ]


def test_cloze_answer_hidden_everywhere_or_only_on_the_back_passes() -> None:
    body = """
    # Pooling

    {{c1::Max pooling}} keeps the largest value; {{c1::Max pooling}} has no weights.
    Pooling in a {{c2::maximal}} way.
    %
    Max pooling is the usual choice.
    """
    assert reader_checks(card(body, "cloze")) == []


def test_list_or_table_run_into_a_paragraph() -> None:
    body = """
    # Q?

    The pros:
    - cheap
    - sparse

    **Shapes**
    | a | b |
    |---|---|
    | 1 | 2 |
    """
    assert located(reader_checks(card(body))) == [
        "10:1: warning: list directly after a paragraph line is shown as run-on text",
        "14:1: warning: table directly after a paragraph line is shown as run-on text",
    ]


def test_run_on_list_right_after_the_question() -> None:
    body = "# Name the parts:\n- a\n- b\n%\nA and b.\n"
    assert located(reader_checks(card(body))) == [
        "8:1: warning: list directly after a paragraph line is shown as run-on text"
    ]


def test_lists_and_tables_with_a_blank_line_or_inside_blocks_pass() -> None:
    body = """
    # Q?

    The pros:

    - cheap
    lazy continuation of the item
    - sparse

    | a | b |
    |---|---|
    | 1 | 2 |

    ## A heading
    - right after a heading is a list

    ```text
    A paragraph in code
    - is not Markdown
    ```

    $$
    a
    - b
    $$
    """
    assert reader_checks(card(body)) == []


def test_long_answer_counts_words_but_not_code() -> None:
    prose = " ".join(["word"] * 150)
    code = "\n".join(f"print({n})" for n in range(50))
    short = card(f"# Q?\n\n{prose}\n\n```python\n{code}\n```\n")
    assert answer_words(short) == 150
    assert reader_checks(short) == []
    long = card(f"# Q?\n\n{prose} and $x$\n")
    assert answer_words(long) == 152
    assert located(reader_checks(long)) == ["9:1: warning: the answer is 152 words long (over 150, code excluded)"]
    assert reader_checks(long, max_back_words=200) == []


def test_unknown_language_suggests_the_closest_lexer() -> None:
    parsed, _ = parse_card_file(PATH, "---\nid: alpha-x\ntags: []\n---\n# Q?\n\n```pyhton\nx = 1\n```\n")
    assert parsed is not None
    _, problems = validate_file(parsed, "alpha")
    assert [(p.message, p.hint) for p in problems] == [
        (
            "unknown code language 'pyhton'",
            "did you mean 'python'? use a Pygments language name such as python, bash, text or output",
        )
    ]


def test_no_suggestion_when_nothing_is_close() -> None:
    parsed, _ = parse_card_file(PATH, "---\nid: alpha-x\ntags: []\n---\n# Q?\n\n```zqxwv\nx\n```\n")
    assert parsed is not None
    _, problems = validate_file(parsed, "alpha")
    assert [p.hint for p in problems] == ["use a Pygments language name such as python, bash, text or output"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a {{c1::b}} c", ["a ", (1, ["b"], None), " c"]),
        ("{{c2::b::hint}}", [(2, ["b"], "hint")]),
        ("x }} y", ["x ", "}}", " y"]),
        ("{{c1::open", ["{{c1::open"]),
        ("a {{c1::b {{c2::c}} d}}", ["a ", (1, ["b ", (2, ["c"], None), " d"], None)]),
    ],
)
def test_cloze_tree(text: str, expected: list[object]) -> None:
    def plain(node: str | Cloze) -> object:
        if isinstance(node, str):
            return node
        return (node.ordinal, [plain(n) for n in node.nodes], node.hint)

    assert [plain(node) for node in read_clozes(text).nodes] == expected


def test_cloze_positions_and_ordinals() -> None:
    text = "{{c2::a}} and {{c1::b}} and {{c2::c}}"
    reading = read_clozes(text)
    assert [(c.ordinal, text[c.start : c.end]) for c in reading.deletions] == [
        (2, "{{c2::a}}"),
        (1, "{{c1::b}}"),
        (2, "{{c2::c}}"),
    ]
    assert reading.ordinals == (1, 2)
    assert reading.numbers == (2, 1, 2)
    assert reading.problem is None


def test_question_side_code_has_a_phone_budget() -> None:
    fits = "x = " + "1 + " * 8 + "1"  # 37 characters
    body = f"# Which value?\n```python\n{fits}\n{fits}00\n```\n%\n```python\n{fits}00\n```\n"
    assert located(reader_checks(card(body))) == [
        "10:39: warning: code line is 39 characters long (over 38, the question side's phone budget)"
    ]


def test_wide_table_is_located_and_a_narrow_one_passes() -> None:
    wide_cell = "`keras.utils.image_dataset_from_directory`"
    body = f"""
    # Q?

    | old | new | notes |
    | --- | --- | --- |
    | `a` | {wide_cell} | {wide_cell} |

    | a | b |
    | --- | --- |
    | short words only | wrap in their cells without any trouble at all |
    """
    problems = reader_checks(card(body))
    assert located(problems) == ["9:1: warning: table needs about 909 px; it scrolls over 100% past a phone's 314 px"]
    assert "split it" in (problems[0].hint or "")


def test_a_table_on_the_question_side_must_fit_without_scrolling() -> None:
    body = (
        "# Read the table:\n\n| layer | output shape | parameters |\n| --- | --- | --- |\n"
        "| `BatchNormalization` | (26, 26, 32) | 128 |\n%\nYes.\n"
    )
    assert located(reader_checks(card(body))) == [
        "9:1: warning: table on the question side needs about 413 px; a phone shows 314 px"
    ]


def test_wide_formulas() -> None:
    long_sum = "(10 \\cdot 16 + 16) + (16 \\cdot 8 + 8) + (8 \\cdot 1 + 1) = 176 + 136 + 9 = 321"
    body = f"# Q?\n\nInline: ${long_sum}$.\n\n$$a = b$$\n\n$${long_sum} \\qquad {long_sum}$$\n"
    assert [p.message.split(" is about")[0] for p in reader_checks(card(body))] == [
        "inline formula",
        "display formula",
    ]
    assert [p.location.line for p in reader_checks(card(body))] == [9, 13]


def test_formula_width_estimate() -> None:
    from generator.cards.checks import tex_width

    assert tex_width("x") == pytest.approx(12.0)
    assert tex_width("\\frac{a + b}{c}") == tex_width("a + b")  # a fraction is as wide as its wider part
    assert tex_width("\\begin{aligned} a &= b \\\\ c + d + e &= f \\end{aligned}") == tex_width("c + d + e = f")


def test_a_hidden_formula_inside_a_longer_visible_one_gives_itself_away() -> None:
    body = "# Counts\n\n- RNN: {{c1::$h\\,(f + h + 1)$}}\n- LSTM: {{c2::$4\\,h\\,(f + h + 1)$}}\n"
    assert located(reader_checks(card(body, "cloze"))) == [
        "9:8: warning: the text hidden by c1, '$h\\,(f + h + 1)$', is shown elsewhere on the same side"
    ]


@pytest.mark.parametrize(
    ("text", "problem", "offset"),
    [
        ("a {{c1::b {{c2::c}} d}}", "cloze deletion {{c2::…}} is nested inside another", 10),
        ("a {{c1::b}} {{c3::open", "cloze deletion {{c3::…}} is never closed with '}}'", 12),
        ("{{c1::x {{c2::y", "cloze deletion {{c2::…}} is nested inside another", 8),
    ],
)
def test_one_reading_names_the_first_broken_deletion(text: str, problem: str, offset: int) -> None:
    reading = read_clozes(text)
    assert (reading.problem, reading.problem_offset) == (problem, offset)


def test_an_unclosed_deletion_and_what_follows_stay_text_as_in_anki() -> None:
    reading = read_clozes("a {{c1::b}} {{c2::c }} d {{c3::e")
    assert reading.numbers == (1, 2, 3)
    assert reading.ordinals == (1, 2)  # Anki makes no card for the unclosed c3
    assert reading.nodes[-1] == "{{c3::e"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("# T\n\nx {{c1::b {{c2::c}}}}\n", "8:11: error: cloze deletion {{c2::…}} is nested inside another"),
        ("# T {{c1::a\n\nb\n", "6:5: error: cloze deletion {{c1::…}} is never closed with '}}'"),
        ("#   T {{c1::a\n\nb\n", "6:7: error: cloze deletion {{c1::…}} is never closed with '}}'"),
    ],
)
def test_validation_places_a_broken_deletion_at_its_marker(body: str, expected: str) -> None:
    parsed, _ = parse_card_file(PATH, "---\nid: alpha-c\ntags: []\ntype: cloze\n---\n" + body)
    assert parsed is not None
    result, problems = validate_file(parsed, "alpha")
    assert result is None
    assert located(problems) == [expected]


def test_each_deletion_number_is_read_for_giveaways_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from generator.cards import checks

    built: list[int] = []
    question_side = checks._question_side_text
    monkeypatch.setattr(
        checks, "_question_side_text", lambda nodes, active: built.append(active) or question_side(nodes, active)
    )
    body = "# Many\n\n" + " ".join(f"{{{{c{1 + n % 3}::word{n}}}}}" for n in range(600)) + " word7\n"
    problems = reader_checks(card(body, "cloze"))
    assert sorted(built) == [1, 2, 3]
    assert located(problems) == ["9:99: warning: the text hidden by c2, 'word7', is shown elsewhere on the same side"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="{}c1:: ab\n", max_size=40))
def test_the_shortcut_for_text_without_markers_reads_as_the_full_reader(text: str) -> None:
    assert read_clozes(text) == cloze_module._read_markers(text)


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from("ab9_é.-*`$ \t\n\u00a0\u2003"), max_size=60))
def test_words_are_counted_as_runs_of_non_space_holding_a_letter_or_digit(text: str) -> None:
    """The word pattern starts at a word's first letter or digit; it counts what the plain definition counts."""
    plain_definition = re.compile(r"\S*[^\W_]\S*")
    tokens_with_a_letter = [t for t in text.split() if any(c.isalnum() for c in t)]
    assert len(WORD.findall(text)) == len(plain_definition.findall(text)) == len(tokens_with_a_letter)
