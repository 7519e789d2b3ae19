"""Code on the real cards is readable in light and night mode, as a real browser computes it.

Every card of the release is imported into Anki; the answer HTML of the cards
with code is laid out in headless Chromium with the note type's CSS, once as
Anki shows it by day (`card`) and once at night (`card nightMode night_mode`).
The page reports each code token's computed colour and its block's background.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.anki_support import import_package, rendered

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

REPORT_SCRIPT = """
<script>
function rgb(value) { return value.match(/[\\d.]+/g).slice(0, 4).map(Number); }
const report = [];
for (const block of document.querySelectorAll('.highlight')) {
  const background = rgb(getComputedStyle(block).backgroundColor);
  for (const span of block.querySelectorAll('pre span')) {
    if (!span.textContent.trim() || span.children.length) continue;
    report.push({text: span.textContent.slice(0, 30), cls: span.className,
                 color: rgb(getComputedStyle(span).color), background: background});
  }
}
const pre = document.createElement('pre');
pre.id = 'report';
pre.textContent = JSON.stringify(report);
document.body.replaceChildren(pre);
</script>
"""


def luminance(rgb: list[float]) -> float:
    channels = [c / 255 for c in rgb[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: list[float], b: list[float]) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def computed_colours(page: Path, profile: Path) -> list[dict]:
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    match = re.search(r'<pre id="report">(.*)</pre>', result.stdout, re.DOTALL)
    assert match, result.stdout[-2000:] + result.stderr[-2000:]
    import html

    return json.loads(html.unescape(match.group(1)))


@pytest.fixture(scope="module")
def code_answers(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    from anki.collection import Collection

    folder = tmp_path_factory.mktemp("anki")
    collection = Collection(str(folder / "collection.anki2"))
    try:
        import_package(collection, ROOT / "dist" / "all-topics.apkg")
        answers = [answer for _, _, answer in rendered(collection) if 'class="highlight' in answer]
        css = collection.models.get(1246741619)["css"]
    finally:
        collection.close()
    return css, "\n".join(answers)


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="needs Debian's chromium")
@pytest.mark.parametrize(("body_class", "dark_background"), [("card", False), ("card nightMode night_mode", True)])
def test_every_code_token_is_readable(code_answers, tmp_path: Path, body_class: str, dark_background: bool) -> None:
    assert CHROMIUM is not None, "CI must install chromium"
    css, answers = code_answers
    page = tmp_path / "cards.html"
    page.write_text(
        f'<!doctype html><html><head><meta charset="utf-8"><style>{css}</style></head>'
        f'<body class="{body_class}">{answers}{REPORT_SCRIPT}</body></html>',
        encoding="utf-8",
    )
    tokens = computed_colours(page, tmp_path / "profile")
    assert len(tokens) > 2000
    backgrounds = {tuple(t["background"]) for t in tokens}
    assert all((luminance(list(b)) < 0.05) == dark_background for b in backgrounds), backgrounds
    unreadable = sorted({(t["cls"], tuple(t["color"])) for t in tokens if contrast(t["color"], t["background"]) < 3.0})
    assert not unreadable, unreadable
