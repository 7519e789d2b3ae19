"""Every card side fits a phone screen: only code, tables and formulas scroll, inside their own box.

The content is built afresh (into a temporary folder, with the note types' CSS
as the generator writes it now) and imported into Anki, which renders each
card's question and answer as the reviewers get them. One headless Chromium
page typesets every side with Anki's own MathJax (from the `aqt` wheel, never
the network), then lays each side out in a frame as wide as a phone (360 and
412 px), by day and at night, with the classes Anki desktop, AnkiDroid and
AnkiMobile put on the page. A side fails when its document is wider than the
frame (`scrollWidth > innerWidth`): the whole card would pan sideways.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from generator.apkg.notetype import stylesheet
from generator.cli import main
from generator.preview.assets import ANKI_READER_CSS
from tests.browser import needs_chromium, report
from tests.test_tex_mathjax import anki_mathjax

pytestmark = [pytest.mark.slow, needs_chromium]

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = (360, 412)
# Classes each client puts on <html> and <body> (Anki's manual, and aqt/webview.py for the desktop).
CLIENTS = {
    "desktop": ("", "card card1 linux", "night-mode", "nightMode night_mode"),
    "ankidroid": ("", "card card1 android mobile", "", "night_mode"),
    "ankimobile": ("", "card card1 iphone mobile", "", "nightMode"),
}

LAYOUT_SCRIPT = """
<script>
const sides = JSON.parse(document.getElementById('sides').textContent);
const configs = JSON.parse(document.getElementById('configs').textContent);
const cardCss = JSON.parse(document.getElementById('css').textContent);

function describe(element) {
  const cls = typeof element.className === 'string' && element.className ? '.' + element.className.split(' ')[0] : '';
  return element.tagName.toLowerCase() + cls + ' ' + JSON.stringify((element.textContent || '').trim().slice(0, 50));
}

// The outermost elements reaching past the right edge: what makes the page wider.
function culprits(doc, width) {
  const found = [];
  for (const element of doc.body.querySelectorAll('*')) {
    if (element.getBoundingClientRect().right <= width + 0.5) continue;
    let inside = false;
    for (let up = element.parentElement; up && up !== doc.body; up = up.parentElement) {
      if (up.getBoundingClientRect().right > width + 0.5 || getComputedStyle(up).overflowX !== 'visible') {
        inside = true;
        break;
      }
    }
    if (!inside) found.push(describe(element));
    if (found.length >= 3) break;
  }
  return found;
}

async function main() {
  await MathJax.startup.promise;
  const holder = document.createElement('div');
  for (const html of sides) {
    const div = document.createElement('div');
    div.innerHTML = html;
    holder.appendChild(div);
  }
  document.body.appendChild(holder);
  await MathJax.typesetPromise([holder]);
  const typeset = [...holder.children].map(div => div.innerHTML);
  const mathCss = document.getElementById('MJX-CHTML-styles').textContent;
  holder.remove();
  const wide = [];
  let laidOut = 0;
  for (const config of configs) {
    const frame = document.createElement('iframe');
    frame.style.cssText = `width: ${config.width}px; height: 700px; border: 0`;
    document.body.appendChild(frame);
    const doc = frame.contentDocument;
    doc.open();
    doc.write(`<!doctype html><html class="${config.html}"><head><meta charset="utf-8">` +
      `<base href="${location.href}"><style>${mathCss}</style><style>${cardCss}</style></head>` +
      `<body class="${config.body}"></body></html>`);
    doc.close();
    for (let i = 0; i < typeset.length; i++) {
      doc.body.innerHTML = typeset[i];
      await Promise.all([...doc.images].map(image => image.decode().catch(() => null)));
      await doc.fonts.ready;
      const width = frame.contentWindow.innerWidth;
      const scrollWidth = doc.documentElement.scrollWidth;
      laidOut++;
      if (scrollWidth > width) wide.push({config: config.name, side: i, scrollWidth, culprits: culprits(doc, width)});
    }
    frame.remove();
  }
  const pre = document.createElement('pre');
  pre.id = 'report';
  pre.textContent = JSON.stringify({laidOut, wide});
  document.body.replaceChildren(pre);
}
main();
</script>
"""


def configurations() -> list[dict[str, Any]]:
    configs = []
    for width in WIDTHS:
        for client, (html_day, body, html_night, body_night) in CLIENTS.items():
            configs.append({"name": f"{client} {width} day", "width": width, "html": html_day, "body": body})
            configs.append(
                {
                    "name": f"{client} {width} night",
                    "width": width,
                    "html": f"{html_day} {html_night}".strip(),
                    "body": f"{body} {body_night}",
                }
            )
    return configs


def script_json(value: object) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(value).replace("</", "<\\/")


@pytest.fixture(scope="module")
def card_sides(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[tuple[str, str]], Path]:
    """(label, HTML) of every side Anki renders from a fresh build, and the folder of its media."""
    from anki.collection import Collection

    from tests.anki_support import import_package, rendered

    folder = tmp_path_factory.mktemp("phone")
    dist = folder / "dist"
    shutil.copytree(ROOT / "dist", dist)  # the release ledger the build checks identities against
    result = CliRunner().invoke(
        main,
        ["build", "--content", str(ROOT / "content"), "--dist", str(dist), "--no-cache", "-q", "-j", "2"],
        env={"SOURCE_DATE_EPOCH": "1700000000"},
    )
    assert result.exit_code == 0, result.output
    (folder / "anki").mkdir()
    collection = Collection(str(folder / "anki" / "collection.anki2"))
    try:
        import_package(collection, dist / "all-topics.apkg")
        sides = []
        for number, (deck, question, answer) in enumerate(rendered(collection)):
            sides.append((f"{deck} #{number} question", question))
            sides.append((f"{deck} #{number} answer", answer))
        media = Path(collection.media.dir())
    finally:
        collection.close()
    return sides, media


def lay_out(sides: list[tuple[str, str]], media: Path, site: Path) -> dict[str, Any]:
    web = anki_mathjax()
    shutil.copytree(media, site)
    shutil.copytree(web / "vendor" / "mathjax", site / "mathjax")
    config = (web / "mathjax.js").read_text(encoding="utf-8").replace("/_anki/js/vendor/mathjax", "./mathjax")
    (site / "config.js").write_text(config, encoding="utf-8")
    (site / "index.html").write_text(
        '<!doctype html><html><head><meta charset="utf-8">'
        '<script src="config.js"></script><script src="mathjax/tex-chtml-full.js"></script></head><body>'
        f'<script type="application/json" id="sides">{script_json([html for _, html in sides])}</script>'
        f'<script type="application/json" id="configs">{script_json(configurations())}</script>'
        f'<script type="application/json" id="css">{script_json(ANKI_READER_CSS + stylesheet())}</script>'
        f"{LAYOUT_SCRIPT}</body></html>",
        encoding="utf-8",
    )
    found: dict[str, Any] = report((site / "index.html").as_uri(), site.parent / "profile", wait_ms=900_000)
    return found


def test_no_card_side_is_wider_than_a_phone(card_sides: tuple[list[tuple[str, str]], Path], tmp_path: Path) -> None:
    sides, media = card_sides
    assert len(sides) > 1000
    found = lay_out(sides, media, tmp_path / "site")
    assert found["laidOut"] == len(sides) * len(configurations())
    wide = [
        f"{entry['config']}: {sides[entry['side']][0]} is {entry['scrollWidth']} px wide, by {entry['culprits']}"
        for entry in found["wide"]
    ]
    per_config = Counter(entry["config"] for entry in found["wide"])
    assert wide == [], f"{len(wide)} sides wider than the screen ({dict(per_config)}):\n" + "\n".join(wide[:40])
