"""The preview site's own stylesheet and script; none of this ever reaches a deck."""

from __future__ import annotations

# Anki's reviewer canvas and text colours, by day and at night: the page around a card.
ANKI_LIGHT_CANVAS = "#f5f5f5"
ANKI_NIGHT_CANVAS = "#2c2c2c"
PHONE_WIDTH_PX = 400

# Around the note type's CSS in each side's document: what Anki's reviewer
# provides (canvas, text colour, margins, word wrapping), and how the preview
# marks a formula it cannot typeset.
ANKI_READER_CSS = f"""\
body {{ margin: 20px; color: #020202; background: {ANKI_LIGHT_CANVAS}; overflow-wrap: break-word; }}
body.nightMode {{ color: #fcfcfc; background: {ANKI_NIGHT_CANVAS}; }}
.math-error {{ color: #b3261e; border: 1px dashed currentColor; border-radius: 3px; padding: 0 0.2em; }}
div.math-error {{ margin: 0.5em 0; }}
.nightMode .math-error {{ color: #ff8a80; }}
.math-error-message {{ font-size: 0.8em; }}
/* Chromium's MathML ignores the columnalign attribute that aligned equations rely on. */
mtd[columnalign="left"] {{ text-align: left; }}
mtd[columnalign="right"] {{ text-align: right; }}
"""

PREVIEW_CSS = f"""\
:root {{
  color-scheme: light; --bg: #fafafa; --panel: #ffffff; --fg: #1f2328; --muted: #59636e;
  --line: #d0d7de; --accent: #0b63c4; --error: #d1242f; --warning: #9a6700;
}}
:root.night {{
  color-scheme: dark; --bg: #1e1e1e; --panel: #262626; --fg: #e6edf3; --muted: #9198a1;
  --line: #3d444d; --accent: #6cb6ff; --error: #ff7b72; --warning: #d29922;
}}
* {{ box-sizing: border-box; }}
body {{ margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  background: var(--bg); color: var(--fg); }}
a {{ color: var(--accent); }}
button, input {{ font: inherit; color: inherit; }}
.bar {{ position: sticky; top: 0; z-index: 1; display: flex; flex-wrap: wrap; gap: 0.5em 1em; align-items: center;
  padding: 0.5em 1em; background: var(--panel); border-bottom: 1px solid var(--line); }}
.bar .home {{ font-weight: 600; }}
.switches {{ margin-left: auto; display: flex; gap: 0.5em; }}
.switches button {{ background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 0.2em 0.7em;
  cursor: pointer; }}
.switches button[aria-pressed="true"] {{ background: var(--accent); border-color: var(--accent); color: var(--panel); }}
main {{ padding: 0.5em 1em 3em; }}
.title {{ font-size: 1.3em; margin: 0.4em 0 0.2em; }}
.facts {{ color: var(--muted); margin: 0 0 1em; }}
.diagnostics {{ list-style: none; padding: 0; }}
.diagnostics li {{ border-left: 4px solid var(--warning); padding: 0.3em 0.8em; margin: 0.4em 0;
  background: var(--panel); }}
.diagnostics li.error {{ border-color: var(--error); }}
.diagnostics pre, .source {{ margin: 0; white-space: pre-wrap;
  font: 13px/1.4 ui-monospace, Menlo, Consolas, monospace; }}
.source {{ padding: 0.6em 0.8em; background: var(--panel); border: 1px solid var(--line); border-radius: 6px; }}
.math-problems {{ border-left: 4px solid var(--error); padding: 0.3em 0.8em; background: var(--panel); }}
.view h2 {{ font-size: 1em; color: var(--muted); margin: 1.4em 0 0.4em; }}
.sides {{ display: flex; flex-direction: column; gap: 1em; }}
.phone .sides {{ flex-direction: row; flex-wrap: wrap; align-items: flex-start; }}
.side {{ margin: 0; }}
.side figcaption {{ font-size: 0.85em; color: var(--muted); margin-bottom: 0.2em; }}
/* An outline, not a border: a phone-width frame's document is exactly the phone's width. The frame's
   height is an estimate (its document cannot be measured from here): drag its corner if it falls short. */
.side-frame {{ display: block; width: 100%; border: 0; outline: 1px solid var(--line); border-radius: 6px;
  background: {ANKI_LIGHT_CANVAS}; resize: vertical; overflow: auto; }}
.night .side-frame {{ background: {ANKI_NIGHT_CANVAS}; }}
.phone .side-frame {{ width: {PHONE_WIDTH_PX}px; max-width: 100%; }}
.title, .cards li > a {{ overflow-wrap: anywhere; min-width: 0; }}
.jumps ul {{ list-style: none; padding: 0; margin: 0.6em 0; display: flex; flex-wrap: wrap; gap: 0.2em 1em; }}
.jumps small {{ color: var(--muted); }}
.no-match {{ color: var(--muted); font-style: italic; }}
#search {{ flex: 1 1 16em; max-width: 32em; padding: 0.3em 0.6em; border: 1px solid var(--line); border-radius: 6px;
  background: var(--bg); }}
.count, .type {{ color: var(--muted); }}
.type {{ font-size: 0.8em; }}
.topic h2 {{ font-size: 1.1em; margin: 1.2em 0 0.3em; }}
.topic h2 small {{ color: var(--muted); font-weight: normal; }}
.cards {{ list-style: none; padding: 0; margin: 0; }}
.cards li {{ display: flex; flex-wrap: wrap; gap: 0.2em 0.6em; align-items: baseline; padding: 0.35em 0;
  border-bottom: 1px solid var(--line); }}
[hidden], .cards li[hidden] {{ display: none; }}
.badge {{ font-size: 0.75em; padding: 0 0.5em; border-radius: 999px; color: var(--panel); }}
.badge.error {{ background: var(--error); }}
.badge.warning {{ background: var(--warning); }}
.tags {{ margin-left: auto; display: flex; flex-wrap: wrap; gap: 0.3em; }}
.tag {{ font-size: 0.75em; padding: 0 0.5em; border: 1px solid var(--line); border-radius: 999px;
  background: var(--bg); }}
button.tag {{ cursor: pointer; }}
"""

PREVIEW_JS = """\
// Light/night and desktop/phone switches, side frames sized for the width, search on the index.
// A side frame is a sandbox this script cannot look into: night mode rewrites the frame's
// document (its body's classes) and sizes come from the page's build-time estimates.
(() => {
  'use strict';
  const root = document.documentElement;
  const storageKey = 'decks-preview';
  const state = {night: false, phone: false};
  try { Object.assign(state, JSON.parse(localStorage.getItem(storageKey) || '{}')); } catch (e) { /* no storage */ }
  const params = new URLSearchParams(location.search);
  if (params.has('theme')) state.night = params.get('theme') === 'night';
  if (params.has('width')) state.phone = params.get('width') === 'phone';

  const frames = () => Array.from(document.querySelectorAll('iframe.side-frame'));

  function paint(frame) {
    const height = state.phone ? frame.dataset.phoneHeight : frame.dataset.height;
    if (height) frame.style.height = height + 'px';
    if (frame.dataset.night === String(state.night)) return;
    // Anki's own night-mode classes, so the note type's night rules apply as in Anki.
    const classes = 'card card' + frame.dataset.ordinal + (state.night ? ' nightMode night_mode' : '');
    frame.srcdoc = frame.srcdoc.replace(/<body class="[^"]*"/, '<body class="' + classes + '"');
    frame.dataset.night = String(state.night);
  }

  function apply() {
    root.classList.toggle('night', state.night);
    root.classList.toggle('phone', state.phone);
    const theme = document.getElementById('theme');
    const width = document.getElementById('width');
    if (theme) theme.setAttribute('aria-pressed', String(state.night));
    if (width) width.setAttribute('aria-pressed', String(state.phone));
    frames().forEach(paint);
    try { localStorage.setItem(storageKey, JSON.stringify(state)); } catch (e) { /* no storage */ }
  }

  function toggle(name) {
    state[name] = !state[name];
    apply();
  }

  const themeButton = document.getElementById('theme');
  const widthButton = document.getElementById('width');
  if (themeButton) themeButton.addEventListener('click', () => toggle('night'));
  if (widthButton) widthButton.addEventListener('click', () => toggle('phone'));
  apply();

  const search = document.getElementById('search');
  if (!search) return;
  const items = Array.from(document.querySelectorAll('.cards li'));
  const count = document.getElementById('count');
  const noMatch = document.getElementById('no-match');

  function matches(item, term) {
    const tags = item.dataset.tags.split(' ');
    const tagTerm = term.match(/^(?:tag:|#)(.+)$/);
    if (tagTerm) return tags.some((tag) => tag === tagTerm[1] || tag.startsWith(tagTerm[1] + '::'));
    return item.dataset.text.includes(term) || tags.includes(term);
  }

  function filter() {
    const terms = search.value.toLowerCase().split(/\\s+/).filter(Boolean);
    let shown = 0;
    for (const item of items) {
      item.hidden = !terms.every((term) => matches(item, term));
      if (!item.hidden) shown += 1;
    }
    for (const topic of document.querySelectorAll('.topic')) {
      const inTopic = topic.querySelectorAll('.cards li:not([hidden])').length;
      topic.hidden = inTopic === 0;
      for (const counter of document.querySelectorAll('.topic-count')) {
        if (counter.closest('.topic') === topic || counter.dataset.topic === topic.dataset.topic) {
          counter.textContent = String(inTopic);
        }
      }
    }
    if (noMatch) noMatch.hidden = shown > 0 || items.length === 0;
    count.textContent = terms.length ? `${shown} of ${items.length} cards` : `${items.length} cards`;
  }

  for (const button of document.querySelectorAll('button.tag')) {
    button.addEventListener('click', () => {
      search.value = 'tag:' + button.textContent;
      filter();
    });
  }
  search.addEventListener('input', filter);
  if (params.has('q')) search.value = params.get('q');
  filter();
})();
"""
