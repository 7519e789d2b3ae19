"""`decks preview`: Anki's template rendering, offline math, the site, the live server, and a real browser."""

from __future__ import annotations

import html
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.apkg.notetype import note_types
from generator.cards.load import SourceFile, load_content
from generator.cli import main
from generator.preview.math import ERROR_CLASS, typeset_math
from generator.preview.site import CardPreview, PreviewError, PreviewSite, card_page, preview_card, side_document
from generator.preview.template import render_cloze, render_template
from tests.browser import needs_chromium, report, screenshot
from tests.conftest import T0, WriteCard
from tests.contrast import contrast

ROOT = Path(__file__).resolve().parents[1]
TYPES = note_types()


def previews(content: Path) -> dict[str, CardPreview]:
    loaded, problems = load_content(content)
    assert loaded is not None, problems
    return {source.path.stem: preview_card(source, TYPES) for source in loaded.files}


# --- Anki's templates --------------------------------------------------------

SOFTMAX = r"Softmax maps logits to {{c1::probabilities::what kind}}: {{c2::\(\frac{e^{z_i} }{\sum_j e^{z_j} }\)}}"


def test_cloze_question_and_answer_are_marked_up_like_anki() -> None:
    """The expected strings are what Anki 26.9 renders for the same field."""
    assert render_cloze(SOFTMAX, 1, question=True) == (
        'Softmax maps logits to <span class="cloze" data-cloze="probabilities" data-ordinal="1">[what kind]</span>: '
        r'<span class="cloze-inactive" data-ordinal="2">\(\frac{e^{z_i} }{\sum_j e^{z_j} }\)</span>'
    )
    assert render_cloze(SOFTMAX, 2, question=True) == (
        'Softmax maps logits to <span class="cloze-inactive" data-ordinal="1">probabilities</span>: '
        '<span class="cloze" data-cloze="&#x5C;&#x28;&#x5C;frac&#x7B;e&#x5E;&#x7B;z&#x5F;i&#x7D;&#x20;&#x7D;&#x7B;'
        '&#x5C;sum&#x5F;j&#x20;e&#x5E;&#x7B;z&#x5F;j&#x7D;&#x20;&#x7D;&#x5C;&#x29;" data-ordinal="2">[...]</span>'
    )
    assert render_cloze(SOFTMAX, 1, question=False).startswith(
        'Softmax maps logits to <span class="cloze" data-ordinal="1">probabilities</span>'
    )
    assert render_cloze(SOFTMAX, 3, question=True) == ""  # Anki makes no card 3


def test_deletion_inside_a_formula_leaves_plain_tex() -> None:
    text = r"and \(\frac{ {{c3::a}} }{b}\)"
    assert render_cloze(text, 3, question=True) == r"and \(\frac{ [...] }{b}\)"
    assert render_cloze(text, 3, question=False) == r"and \(\frac{ a }{b}\)"


def test_templates_fill_fields_front_side_and_sections() -> None:
    basic, reversed_type, cloze = TYPES["basic"], TYPES["reversed"], TYPES["cloze"]
    fields = {"Front": "<p>Q</p>", "Back": "<p>A</p>", "Id": "x-y"}
    question = render_template(basic.templates[0].question, fields)
    assert question == '<div class="question"><p>Q</p></div>'
    assert render_template(basic.templates[0].answer, fields, question=False, front_side=question) == (
        '<div class="question"><p>Q</p></div>\n<hr id="answer">\n'
        '<div class="answer"><p>A</p></div><div class="card-id">x-y</div>'
    )
    assert render_template(reversed_type.templates[1].question, fields) == '<div class="answer"><p>A</p></div>'
    no_extra = render_template(
        cloze.templates[0].answer, {"Text": "{{c1::x}}", "Extra": "", "Id": "i"}, cloze_ordinal=1, question=False
    )
    assert "hr" not in no_extra and no_extra.endswith('<div class="card-id">i</div>')


ANKI_EDGE_CARD = (
    "---\nid: beta-edges\ntags: [math]\ntype: cloze\nsource: [s#6]\n---\n# Édge cases\n\n"
    "A {{c1::café::French}} and $a < b$ with {{c2::$x^{2}$}} and $\\frac{ {{c3::k}} }{2}$.\n%\nExtra.\n"
)


@pytest.mark.slow
def test_templates_are_filled_exactly_as_anki_fills_them(
    content: Path, sample_cards: None, tmp_path: Path, runner: CliRunner, collection_factory: Callable[[], Any]
) -> None:
    from tests.anki_support import import_package

    (content / "beta" / "edges.md").write_text(ANKI_EDGE_CARD, encoding="utf-8")
    dist = tmp_path / "dist"
    result = runner.invoke(
        main, ["build", "--content", str(content), "--dist", str(dist)], env={"SOURCE_DATE_EPOCH": str(T0)}
    )
    assert result.exit_code == 0, result.output
    collection = collection_factory()
    import_package(collection, dist / "all-topics.apkg")
    ours = {p.card.id: p for p in previews(content).values() if p.card is not None}
    compared = 0
    for card_id in sorted(collection.find_cards("")):
        card = collection.get_card(card_id)
        output = card.render_output(reload=True)
        view = next(v for v in ours[card.note()["Id"]].views if v.question.ordinal == card.ord + 1)
        assert view.question.html == typeset_math(output.question_text)[0]
        assert view.answer.html == typeset_math(output.answer_text)[0]
        compared += 1
    assert compared == 10  # three basic, two reversed directions, two + three cloze numbers


# --- math ---------------------------------------------------------------------


def test_formulas_become_mathml_and_code_is_left_alone() -> None:
    side, problems = typeset_math(r"<p>\(a &lt; b\) and \[\frac{1}{2}\]</p><pre><code>print('\(x\)')</code></pre>")
    assert problems == []
    assert side.count("<math") == 2 and 'display="block"' in side
    assert "<mo>&lt;</mo>" in side  # the unescaped operator, escaped again as MathML
    assert r"<code>print('\(x\)')</code>" in side


@pytest.mark.parametrize("tex", [r"\frac{1}{", r"\left( x", r"\notacommand{x}"])
def test_a_formula_that_cannot_be_typeset_is_shown_raw_with_the_reason(tex: str) -> None:
    side, problems = typeset_math(rf"<p>See \({tex.replace('<', '&lt;')}\).</p>")
    assert [p.tex for p in problems] == [tex]
    assert f'class="{ERROR_CLASS}"' in side
    assert rf"\({tex}\)" in side
    assert "formula not typeset:" in side


TEX_PIECES = [*"\\{}[]()^_&<>$ ax1", r"\frac", r"\left", r"\right", r"\sqrt", r"\begin{matrix}", r"\end{matrix}"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TEX_PIECES), max_size=30).map("".join))
def test_typesetting_never_crashes(tex: str) -> None:
    side, problems = typeset_math(rf"<p>\({html.escape(tex, quote=False)}\)</p>")
    assert side.startswith("<p>") and side.endswith("</p>")
    assert side.count(f'class="{ERROR_CLASS}"') == len(problems)


# --- one card -----------------------------------------------------------------


def test_every_anki_card_of_a_note_gets_a_view(content: Path, sample_cards: None) -> None:
    found = previews(content)
    assert [v.label for v in found["dense"].views] == ["Card 1"]
    assert [v.label for v in found["reversed"].views] == [
        "Card 1: question → answer",
        "Card 2: answer → question",
    ]
    assert [(v.label, v.question.ordinal) for v in found["cloze"].views] == [("Cloze 1", 1), ("Cloze 2", 2)]
    cloze_question = found["cloze"].views[0].question.html
    assert '<span class="cloze" data-cloze="probabilities" data-ordinal="1">[...]</span>' in cloze_question
    sigmoid = found["sigmoid"].views[0].answer.html
    assert sigmoid.count("<math") == 3 and "\\(" not in sigmoid and found["sigmoid"].math_problems == ()


def test_preview_is_a_pure_function_of_the_file(content: Path, sample_cards: None) -> None:
    source = SourceFile(content / "alpha" / "dense.md", "alpha", (content / "alpha" / "dense.md").read_text())
    first, second = preview_card(source, TYPES), preview_card(source, TYPES)
    assert first == second and first is not second
    assert card_page(first, "Deck") == card_page(second, "Deck")


def test_a_broken_card_shows_its_located_diagnostic_and_source(content: Path, write_card: WriteCard) -> None:
    path = write_card("alpha", "broken", "id: alpha-broken\ntags: []", "# Q <b>?\n\n```pyhton\nx = 1\n```\n")
    found = previews(content)["broken"]
    assert found.card is None and found.views == ()
    page = card_page(found, "Deck")
    assert f"{path}:7:1: error: unknown code language &#x27;pyhton&#x27;" in page
    assert "hint: did you mean &#x27;python&#x27;?" in page
    assert "# Q &lt;b&gt;?" in page  # the source, escaped


def test_text_on_the_pages_is_escaped(content: Path, write_card: WriteCard) -> None:
    write_card(
        "alpha", "tricky", "id: alpha-tricky\ntags: [code]\nsource: [s#1]", "# What does `<script>` do?\n\nIt runs.\n"
    )
    found = previews(content)["tricky"]
    page = card_page(found, "A <deck>")
    assert "<script>" not in page.replace('<script src="../../assets/preview.js"></script>', "")
    assert "<title>What does &lt;script&gt; do?</title>" in page
    assert "A &lt;deck&gt;" in page


# --- the site -----------------------------------------------------------------


def test_site_has_an_index_and_one_page_per_card(content: Path, sample_cards: None, tmp_path: Path) -> None:
    out = tmp_path / "site"
    report_ = PreviewSite(content, out).build()
    assert report_.cards == 5
    pages = sorted(p.relative_to(out).as_posix() for p in (out / "cards").rglob("*.html"))
    assert pages == [
        "cards/alpha/dense.html",
        "cards/alpha/sigmoid.html",
        "cards/alpha/table.html",
        "cards/beta/cloze.html",
        "cards/beta/reversed.html",
    ]
    index = (out / "index.html").read_text()
    assert index.count('<li data-text="') == 5
    assert 'data-tags="code alpha"' in index
    assert "Alpha Topic" in index and "Beta Topic" in index
    page = (out / "cards" / "alpha" / "dense.html").read_text()
    assert html.escape(TYPES["basic"].css) in page  # exactly the note type's CSS, inside each side's document


def test_update_rebuilds_only_the_changed_card(content: Path, sample_cards: None, tmp_path: Path) -> None:
    site = PreviewSite(content, tmp_path / "site")
    site.build()
    dense = content / "alpha" / "dense.md"
    dense.write_text(dense.read_text().replace("Call", "Simply call"))
    report_ = site.update([dense])
    assert report_.rebuilt == (dense,)
    assert report_.written == ("cards/alpha/dense.html",)
    assert "Simply call" in (tmp_path / "site" / "cards" / "alpha" / "dense.html").read_text()
    dense.unlink()
    report_ = site.update([dense])
    assert "cards/alpha/dense.html" in report_.written and not (tmp_path / "site/cards/alpha/dense.html").exists()


def test_duplicate_ids_are_shown_on_the_later_card(content: Path, sample_cards: None, tmp_path: Path) -> None:
    (content / "beta" / "copy.md").write_text((content / "alpha" / "dense.md").read_text())
    PreviewSite(content, tmp_path / "site").build()
    assert "id &#x27;alpha-dense&#x27; is also used by" in (tmp_path / "site/cards/beta/copy.html").read_text()


def test_refuses_a_folder_it_did_not_write(content: Path, tmp_path: Path) -> None:
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(PreviewError, match="holds no earlier preview"):
        PreviewSite(content, tmp_path / "precious")


# --- the command line -----------------------------------------------------------


def test_cli_preview_writes_the_site(content: Path, sample_cards: None, runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "site"
    result = runner.invoke(main, ["preview", "--content", str(content), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"previewed 5 cards: open {out / 'index.html'}"
    assert (out / "cards" / "beta" / "cloze.html").is_file()
    again = runner.invoke(main, ["preview", "--content", str(content), "--out", str(tmp_path)])
    assert again.exit_code == 1 and "holds no earlier preview" in again.stderr


def test_cli_serve_reports_a_busy_port(content: Path, runner: CliRunner, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        arguments = ["preview", "--serve", "--port", str(port), "--content", str(content), "--out", str(tmp_path / "s")]
        result = runner.invoke(main, arguments)
    assert result.exit_code == 1
    assert f"cannot serve on 127.0.0.1:{port}: Address already in use" in result.stderr


# --- the live server ----------------------------------------------------------


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        data: bytes = response.read()
    return data.decode()


def _wait_for(url: str, needle: str, timeout: float = 15) -> float:
    """Poll `url` until it contains `needle`; return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if needle in _fetch(url):
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not in {url} after {timeout} s:\n{_fetch(url)[-3000:]}")


@pytest.fixture
def server(content: Path, sample_cards: None, tmp_path: Path) -> Iterator[str]:
    """`decks preview --serve` on a free port, in a process of its own; yields its URL."""
    command = [sys.executable, "-m", "generator", "preview", "--serve", "--port", "0", "--out", "site"]
    log = tmp_path / "server.log"
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=tmp_path, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"serving (http://127\.0\.0\.1:\d+/)", log.read_text())):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield found.group(1)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_serve_rebuilds_an_edited_card_and_shows_a_broken_one(server: str, content: Path) -> None:
    url = server
    page = url + "cards/alpha/dense.html"
    first = _fetch(page)
    assert "Call" in first and '<script src="/__live.js" data-digest="' in first
    assert "fetch('/__digest?page='" in _fetch(url + "__live.js")
    digest = _fetch(url + "__digest?page=/cards/alpha/dense.html")
    dense = content / "alpha" / "dense.md"
    dense.write_text(dense.read_text().replace("Call", "Now call"))
    seconds = _wait_for(page, "Now call")
    print(f"edited card served {seconds * 1000:.0f} ms after the save")
    assert _fetch(url + "__digest?page=/cards/alpha/dense.html") != digest
    dense.write_text(dense.read_text().replace("```python", "```pyhton"))
    _wait_for(page, "content/alpha/dense.md:10:1: error: unknown code language &#x27;pyhton&#x27;")
    assert "hint: did you mean &#x27;python&#x27;?" in _fetch(page)
    assert "Now call" in _fetch(url + "cards/alpha/dense.html")  # its source is shown
    assert "1 error" in _fetch(url)  # the index marks it


# --- in a real browser -----------------------------------------------------------

# Added to a card page as a script file (the page's policy allows no inline script):
# switches theme and width with the page's own buttons and, for each state, records
# each frame's size and the document the page gave it. The frames are sandboxed, so
# nothing can look into them: each recorded document is laid out again in a probe
# frame of the test's own, at the frame's width, and measured there.
CARD_REPORT_SCRIPT = r"""
window.addEventListener('load', async () => {
  const rgb = (value) => value.match(/[\d.]+/g).slice(0, 4).map(Number);
  function proseText(body) {
    const copy = body.cloneNode(true);
    copy.querySelectorAll('pre, code, math').forEach((element) => element.remove());
    return copy.textContent;
  }
  async function probe(frame) {
    const copy = document.createElement('iframe');
    copy.style.cssText = `width:${frame.clientWidth}px;height:50px;border:0;display:block`;
    const loaded = new Promise((resolve) => copy.addEventListener('load', resolve));
    copy.srcdoc = frame.srcdoc;
    document.body.append(copy);
    await loaded;
    const doc = copy.contentDocument;
    const view = doc.defaultView;
    const tokens = [];
    for (const span of doc.querySelectorAll('.highlight pre span')) {
      if (!span.textContent.trim() || span.children.length) continue;
      tokens.push({cls: span.className, color: rgb(view.getComputedStyle(span).color),
                   background: rgb(view.getComputedStyle(span.closest('.highlight')).backgroundColor)});
    }
    const result = {
      sandbox: frame.getAttribute('sandbox'),
      bodyClass: doc.body.className,
      frameWidth: frame.getBoundingClientRect().width,
      frameHeight: frame.getBoundingClientRect().height,
      documentWidth: doc.documentElement.clientWidth,
      contentHeight: doc.documentElement.scrollHeight,
      scrolls: doc.documentElement.scrollWidth > doc.documentElement.clientWidth,
      math: doc.querySelectorAll('math').length,
      mathErrors: doc.querySelectorAll('.math-error').length,
      rawTex: /\\[(\[]/.test(proseText(doc.body)),
      text: doc.body.textContent.trim().slice(0, 80),
      textColor: rgb(view.getComputedStyle(doc.body).color),
      tokens,
    };
    copy.remove();
    return result;
  }
  const states = [];
  async function snapshot(name) {
    const sides = [];
    for (const frame of document.querySelectorAll('iframe.side-frame')) sides.push(await probe(frame));
    states.push({name, rootClass: document.documentElement.className, sides});
  }
  const click = (id) => document.getElementById(id).click();
  await snapshot('light desktop');
  click('theme');
  await snapshot('night desktop');
  click('width');
  await snapshot('night phone');
  click('theme');
  await snapshot('light phone');
  const pre = document.createElement('pre');
  pre.id = 'report';
  pre.textContent = JSON.stringify(states);
  document.body.replaceChildren(pre);
});
"""


@pytest.fixture
def fixture_site(content: Path, sample_cards: None, runner: CliRunner, tmp_path: Path) -> Path:
    """The preview of the sample cards (code, math, a table, a cloze, a reversed card), made by the CLI."""
    site = tmp_path / "site"
    result = runner.invoke(main, ["preview", "--content", str(content), "--out", str(site)])
    assert result.exit_code == 0, result.output
    return site


def _with_report(page: Path) -> Path:
    target = page.with_name(page.stem + "-report.html")
    (page.parent / "report.js").write_text(CARD_REPORT_SCRIPT)
    target.write_text(page.read_text().replace("</body>", '<script src="report.js"></script></body>'))
    return target


@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize("name", ["alpha/dense", "alpha/sigmoid", "alpha/table", "beta/cloze", "beta/reversed"])
def test_card_page_in_a_browser(fixture_site: Path, tmp_path: Path, name: str) -> None:
    page = fixture_site / "cards" / f"{name}.html"
    states = report(_with_report(page).as_uri(), tmp_path / "profile", wait_ms=3000)
    assert [s["name"] for s in states] == ["light desktop", "night desktop", "night phone", "light phone"]
    sides_per_state = {len(s["sides"]) for s in states}
    assert sides_per_state == {2 * {"beta/cloze": 2, "beta/reversed": 2}.get(name, 1)}
    for state in states:
        night, phone = "night" in state["name"], "phone" in state["name"]
        assert ("night" in state["rootClass"].split()) == night
        for side in state["sides"]:
            assert side["sandbox"] == ""
            assert ("nightMode" in side["bodyClass"].split() and "night_mode" in side["bodyClass"].split()) == night
            assert side["bodyClass"].startswith("card card")
            assert (side["documentWidth"] == 400) == phone, side  # the card's document is exactly phone-wide
            # The estimated height holds the card (no scrolling inside) without much to spare.
            assert side["contentHeight"] <= side["frameHeight"] <= 1.6 * side["contentHeight"] + 120, side
            assert not side["scrolls"], side
            assert side["mathErrors"] == 0 and not side["rawTex"], side
            text_luminance_dark = sum(side["textColor"][:3]) < 3 * 128
            assert text_luminance_dark != night
            for token in side["tokens"]:
                assert contrast(token["color"], token["background"]) >= (3.0 if night else 4.5), token
        if name == "alpha/dense":
            colours = {tuple(t["color"]) for side in state["sides"] for t in side["tokens"]}
            assert len(colours) >= 3, colours  # keywords, names, strings and comments are coloured
        if name in ("alpha/sigmoid", "beta/cloze"):  # typeset on every answer (a cloze may hide its formula)
            assert all(side["math"] > 0 for side in state["sides"][1::2])
    shots = tmp_path / "screenshots"
    shots.mkdir()
    for query in ("", "?theme=night", "?theme=night&width=phone"):
        target = shots / (re.sub(r"\W+", "-", name + query) + ".png")
        screenshot(page.as_uri() + query, target, tmp_path / "profile-shots")


@pytest.mark.slow
@needs_chromium
def test_index_search_in_a_browser(
    content: Path, sample_cards: None, write_card: WriteCard, runner: CliRunner, tmp_path: Path
) -> None:
    write_card(
        "alpha", "relu", "id: alpha-relu\ntags: [math]\nsource: [s#6]", "# Why is $\\max(0, x)$ cheap?\n\nNo exp.\n"
    )
    site = tmp_path / "site"
    assert runner.invoke(main, ["preview", "--content", str(content), "--out", str(site)]).exit_code == 0
    # A script file: the page's policy allows no inline script.
    (site / "report.js").write_text("""window.addEventListener('load', () => {
      const visible = [...document.querySelectorAll('.cards li')].filter((li) => !li.hidden)
        .map((li) => li.querySelector('a').getAttribute('href'));
      const counts = [...document.querySelectorAll('.topic-count')].map((c) => c.textContent);
      const pre = document.createElement('pre'); pre.id = 'report';
      pre.textContent = JSON.stringify({visible, counts, count: document.getElementById('count').textContent,
                                        noMatch: !document.getElementById('no-match').hidden,
                                        jumps: [...document.querySelectorAll('.jumps a')].map((a) => a.hash),
                                        topics: [...document.querySelectorAll('.topic')].map((t) => '#' + t.id),
                                        math: document.querySelectorAll('.cards math').length});
      document.body.replaceChildren(pre);
    });""")
    page = site / "index-report.html"
    page.write_text((site / "index.html").read_text().replace("</body>", '<script src="report.js"></script></body>'))
    everything = report(page.as_uri(), tmp_path / "a")
    assert len(everything["visible"]) == 6 and everything["count"] == "6 cards"
    assert everything["math"] == 1  # the formula in a question is typeset in the index too
    assert everything["jumps"] == everything["topics"] == ["#topic-alpha", "#topic-beta"]
    assert everything["counts"] == ["4", "2", "4", "2"] and not everything["noMatch"]  # in the jumps and headings
    math = report(page.as_uri() + "?q=tag:math", tmp_path / "b")
    assert math["visible"] == [
        "cards/alpha/sigmoid.html",
        "cards/alpha/relu.html",
        "cards/beta/cloze.html",
    ]
    assert math["counts"] == ["2", "1", "2", "1"]  # the counts follow the filter
    assert report(page.as_uri() + "?q=dense%20layer", tmp_path / "c")["count"] == "1 of 6 cards"
    nothing = report(page.as_uri() + "?q=no-such-card", tmp_path / "d")
    assert nothing["visible"] == [] and nothing["noMatch"] and nothing["count"] == "0 of 6 cards"


# Lays out every side of every card of the real content at 1280 px and lists what scrolls sideways.
OVERFLOW_REPORT_SCRIPT = r"""
<script>
window.addEventListener('load', () => {
  const found = [];
  for (const frame of document.querySelectorAll('iframe')) {
    const doc = frame.contentDocument;
    const page = doc.documentElement;
    if (page.scrollWidth > page.clientWidth) {
      found.push({side: frame.title, what: 'side', by: page.scrollWidth - page.clientWidth});
    }
    for (const box of doc.querySelectorAll('.highlight, table, math[display="block"]')) {
      if (box.scrollWidth > box.clientWidth + 1) {
        found.push({side: frame.title, what: box.tagName.toLowerCase() + '.' + box.className.split(' ')[0],
                    by: box.scrollWidth - box.clientWidth});
      }
    }
  }
  const pre = document.createElement('pre');
  pre.id = 'report';
  pre.textContent = JSON.stringify({frames: document.querySelectorAll('iframe').length, found});
  document.body.replaceChildren(pre);
});
</script>
"""


FRAMES_PER_PAGE = 100


@pytest.mark.slow
@needs_chromium
def test_no_card_side_of_the_real_content_scrolls_sideways_at_1280px(tmp_path: Path) -> None:
    site = PreviewSite(ROOT / "content", tmp_path / "site")
    site.build()
    frames = []
    for path in sorted((ROOT / "content").glob("*/*.md")):
        preview = site.preview_for(path)
        if preview is None:
            continue
        # Every answer side holds its question side (the templates show {{FrontSide}}, or the cloze text
        # revealed), so a question side that scrolled would make its answer side scroll too.
        for view in preview.views:
            assert view.label.startswith("Cloze") or view.question.html in view.answer.html
            title = f"{path.relative_to(ROOT)} {view.label} answer"
            frames.append(
                f'<iframe title="{html.escape(title)}" style="width:1280px;height:60px;border:0;display:block" '
                f'srcdoc="{html.escape(side_document(view.answer, preview.media))}"></iframe>'
            )
    assert len(frames) > 500
    found: list[dict[str, Any]] = []
    for start in range(0, len(frames), FRAMES_PER_PAGE):  # Chromium lays out a few hundred frames at a time
        chunk = frames[start : start + FRAMES_PER_PAGE]
        page = tmp_path / "site" / f"overflow-{start}.html"
        page.write_text(
            f"<!doctype html><html><body style='margin:0'>{''.join(chunk)}{OVERFLOW_REPORT_SCRIPT}</body></html>"
        )
        result = report(page.as_uri(), tmp_path / f"profile-{start}", width=1300, wait_ms=5000)
        assert result["frames"] == len(chunk)
        found.extend(result["found"])
    overflowing = sorted(f"{item['side']}: {item['what']} wider by {item['by']} px" for item in found)
    assert not overflowing, f"{len(overflowing)} sides scroll sideways:\n" + "\n".join(overflowing)


@pytest.mark.slow
@needs_chromium
def test_long_titles_wrap_at_phone_width(
    content: Path, write_card: WriteCard, runner: CliRunner, tmp_path: Path
) -> None:
    identifier = "a_very_long_identifier_name_that_goes_on_and_on_without_any_break_at_all"
    write_card(
        "alpha", "long", "id: alpha-long\ntags: [code]\nsource: [s#7]", f"# What does `{identifier}` do?\n\nIt.\n"
    )
    site = tmp_path / "site"
    assert runner.invoke(main, ["preview", "--content", str(content), "--out", str(site)]).exit_code == 0
    (site / "report.js").write_text("""window.addEventListener('load', () => {
      const pre = document.createElement('pre'); pre.id = 'report';
      pre.textContent = JSON.stringify({page: document.documentElement.scrollWidth, screen: innerWidth,
                                        title: (document.querySelector('.title, .cards a') || {}).textContent});
      document.body.replaceChildren(pre);
    });""")
    for number, page in enumerate((site / "index.html", site / "cards" / "alpha" / "long.html")):
        target = page.with_name("report-" + page.name)
        depth = "../../" if "cards" in page.parts else ""
        target.write_text(page.read_text().replace("</body>", f'<script src="{depth}report.js"></script></body>'))
        found = report(target.as_uri() + "?width=phone", tmp_path / f"p{number}", width=400)
        assert found["page"] <= found["screen"] <= 500, found  # the title wraps instead of widening the page
        assert identifier in found["title"]  # underscores shown as written
