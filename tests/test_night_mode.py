"""Code on the real cards is readable in light and night mode, as a real browser computes it.

Every card of the release is imported into Anki; the answer HTML of the cards
with code is laid out in headless Chromium with the note type's CSS (as the
generator writes it now), once as Anki shows it by day (`card`) and once at
night (`card nightMode night_mode`), on Anki's reviewer canvas. The page
reports each code token's computed colour, its box's background and border,
and the canvas colour.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from generator.apkg.notetype import stylesheet
from generator.preview.assets import ANKI_READER_CSS
from tests.anki_support import import_package, rendered
from tests.browser import needs_chromium, report
from tests.contrast import contrast, luminance

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]

REPORT_SCRIPT = """
<script>
function rgb(value) { return value.match(/[\\d.]+/g).slice(0, 4).map(Number); }
const tokens = [];
const boxes = [];
for (const block of document.querySelectorAll('.highlight')) {
  const style = getComputedStyle(block);
  const background = rgb(style.backgroundColor);
  boxes.push({background: background, border: rgb(style.borderTopColor), borderWidth: style.borderTopWidth});
  for (const span of block.querySelectorAll('pre span')) {
    if (!span.textContent.trim() || span.children.length) continue;
    tokens.push({text: span.textContent.slice(0, 30), cls: span.className,
                 color: rgb(getComputedStyle(span).color), background: background});
  }
}
const page = rgb(getComputedStyle(document.body).backgroundColor);
const pre = document.createElement('pre');
pre.id = 'report';
pre.textContent = JSON.stringify({tokens, boxes, page});
document.body.replaceChildren(pre);
</script>
"""


@pytest.fixture(scope="module")
def code_answers(tmp_path_factory: pytest.TempPathFactory) -> str:
    from anki.collection import Collection

    folder = tmp_path_factory.mktemp("anki")
    collection = Collection(str(folder / "collection.anki2"))
    try:
        import_package(collection, ROOT / "dist" / "all-topics.apkg")
        answers = [answer for _, _, answer in rendered(collection) if 'class="highlight' in answer]
    finally:
        collection.close()
    return "\n".join(answers)


@needs_chromium
@pytest.mark.parametrize(("body_class", "night"), [("card", False), ("card nightMode night_mode", True)])
def test_every_code_token_is_readable(code_answers: str, tmp_path: Path, body_class: str, night: bool) -> None:
    page = tmp_path / "cards.html"
    page.write_text(
        f'<!doctype html><html><head><meta charset="utf-8"><style>{ANKI_READER_CSS}</style>'
        f"<style>{stylesheet()}</style></head>"
        f'<body class="{body_class}">{code_answers}{REPORT_SCRIPT}</body></html>',
        encoding="utf-8",
    )
    found = report(page.as_uri(), tmp_path / "profile")
    tokens = found["tokens"]
    assert len(tokens) > 2000
    backgrounds = {tuple(t["background"]) for t in tokens}
    assert all((luminance(b) < 0.05) == night for b in backgrounds), backgrounds
    # WCAG AA for text by day; at night AA-large, as the dark style was designed for.
    minimum = 3.0 if night else 4.5
    unreadable = sorted(
        {(t["cls"], tuple(t["color"])) for t in tokens if contrast(t["color"], t["background"]) < minimum}
    )
    assert not unreadable, unreadable
    if not night:
        faint = [box for box in found["boxes"] if not stands_out(box, found["page"])]
        assert not faint, faint[:3]


def stands_out(box: dict[str, Any], page: list[float]) -> bool:
    """A code box stands out from Anki's near-white canvas by day: its border or its
    background reaches WCAG's 3:1 for the edges of a component."""
    border = contrast(box["border"], page) if box["borderWidth"] != "0px" else 1.0
    return max(border, contrast(box["background"], page)) >= 3.0
