"""The three note types: fixed ids, frozen fields and templates, and the stylesheet.

Field names, field count, template names and template count are frozen: a change
makes Anki create a "+" copy of the note type and leave existing notes behind as
conflicting. Template text and CSS may change; the manifest then moves the note
type's modification time forward so importers take the change.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from pygments.formatters import HtmlFormatter

from generator.apkg.ids import MODEL_IDS, field_id, template_id
from generator.cards.model import CardType

LIGHT_CODE_STYLE = "default"
DARK_CODE_STYLE = "github-dark"
NIGHT_SELECTORS = (".nightMode", ".night_mode", ".night-mode")
# Light-mode code boxes: a white box whose border stands out 3:1 against Anki's
# light canvas (#f5f5f5) and AnkiMobile's white; the light style's token colours
# are chosen for near-white backgrounds.
LIGHT_CODE_BACKGROUND = "#ffffff"
LIGHT_CODE_BORDER = "#8a8a8a"
NIGHT_FIGURE_FILTER = "invert(0.88) hue-rotate(180deg)"


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    question: str
    answer: str


@dataclass(frozen=True, slots=True)
class NoteType:
    """One Anki note type (model) as this project defines it."""

    kind: CardType
    model_id: int
    name: str
    fields: tuple[str, ...]
    templates: tuple[Template, ...]
    css: str

    @property
    def is_cloze(self) -> bool:
        return self.kind == "cloze"

    @property
    def field_ids(self) -> tuple[int, ...]:
        """Stable field ids (hash-derived, never changing): Anki 23.10+ matches fields by id."""
        return tuple(field_id(self.kind, name) for name in self.fields)

    @property
    def template_ids(self) -> tuple[int, ...]:
        """Stable card-template ids, derived like the field ids."""
        return tuple(template_id(self.kind, t.name) for t in self.templates)

    def definition_hash(self) -> str:
        """Hash of everything Anki stores for the note type; a change needs a newer mod."""
        data = {
            "id": self.model_id,
            "name": self.name,
            "fields": self.fields,
            "field_ids": self.field_ids,
            "template_ids": self.template_ids,
            "templates": [(t.name, t.question, t.answer) for t in self.templates],
            "css": self.css,
            "cloze": self.is_cloze,
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


# Frozen schemas: see the module docstring before touching these names.
BASIC_FIELDS = ("Front", "Back", "Id")
CLOZE_FIELDS = ("Text", "Extra", "Id")

_ID_FOOTER = '<div class="card-id">{{Id}}</div>'
_FRONT = '<div class="question">{{Front}}</div>'
_BACK = '<div class="answer">{{Back}}</div>'


def note_types() -> dict[CardType, NoteType]:
    """The note types, by card type."""
    css = stylesheet()
    return {
        "basic": NoteType(
            "basic",
            MODEL_IDS["basic"],
            "DL Interview Basic",
            BASIC_FIELDS,
            (Template("Card 1", _FRONT, '{{FrontSide}}\n<hr id="answer">\n' + _BACK + _ID_FOOTER),),
            css,
        ),
        "reversed": NoteType(
            "reversed",
            MODEL_IDS["reversed"],
            "DL Interview Basic and Reversed",
            BASIC_FIELDS,
            (
                Template("Card 1", _FRONT, '{{FrontSide}}\n<hr id="answer">\n' + _BACK + _ID_FOOTER),
                Template("Card 2", _BACK, '{{FrontSide}}\n<hr id="answer">\n' + _FRONT + _ID_FOOTER),
            ),
            css,
        ),
        "cloze": NoteType(
            "cloze",
            MODEL_IDS["cloze"],
            "DL Interview Cloze",
            CLOZE_FIELDS,
            (
                Template(
                    "Cloze",
                    '<div class="question cloze-text">{{cloze:Text}}</div>',
                    '<div class="question cloze-text">{{cloze:Text}}</div>\n'
                    '{{#Extra}}<hr id="answer">\n<div class="answer">{{Extra}}</div>{{/Extra}}' + _ID_FOOTER,
                ),
            ),
            css,
        ),
    }


_BASE_CSS = """\
.card {
  font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  font-size: 19px;
  line-height: 1.45;
  text-align: left;
  max-width: 46em;
  margin: 0 auto;
  padding: 0 0.6em;
}
.question > p:first-child { font-weight: 600; }
hr#answer { margin: 1em 0; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #8888; padding: 0.25em 0.6em; vertical-align: top; }
img, svg, video { max-width: 100%; height: auto; }
figure { margin: 0.6em 0; max-width: 100%; }
code { font-family: "JetBrains Mono", Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: 0.88em; }
:not(pre) > code { background: #8882; border-radius: 3px; padding: 0.05em 0.3em; }
.highlight { border-radius: 6px; margin: 0.6em 0; overflow: hidden; }
.highlight pre { margin: 0; padding: 0.6em 0.8em; line-height: 1.35; white-space: pre; text-align: left;
  font-family: "JetBrains Mono", Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: 0.88em; }
/* On a phone nothing but its own box scrolls. Prose breaks a long word, URL or
   inline code rather than widen the page; a table cell keeps its words whole
   (its table scrolls instead of splitting `Conv2D` in two). */
.card { overflow-wrap: break-word; }
p code, li code, a { overflow-wrap: anywhere; }
/* Code keeps its lines (indentation is syntax, and a wrapped line would read as
   a new statement), tables and display formulas keep their layout: each scrolls
   inside its own box. The cue needs no colour, so it works on every client's
   canvas by day and at night: content fades out at the box's right edge while
   more is hidden there; the fade lies over the box's right padding alone once
   the content fits or is scrolled to its end. */
.highlight pre, .card table, .card mjx-container[jax][display="true"] {
  max-width: 100%;
  box-sizing: border-box;
  overflow-x: auto;
  -webkit-mask-image: linear-gradient(to left, transparent, #000 1.1em);
  mask-image: linear-gradient(to left, transparent, #000 1.1em);
}
.highlight pre { padding-right: 1.4em; }
.card table { display: block; width: max-content; padding-right: 1.2em; }
.card mjx-container[jax][display="true"] { overflow-y: hidden; padding: 0.15em 1.2em 0.15em 0; }
/* MathJax's hidden copy for screen readers must not reach past a formula near the right edge. */
.card mjx-assistive-mml { right: 0; }
/* Phones: smaller code, so that a 38-character line fits a 400 px screen. */
@media (max-width: 480px) {
  .highlight pre { font-size: 0.8em; padding: 0.5em 1.1em 0.5em 0.5em; }
}
.highlight.language-output { border-left: 4px solid #8888; }
.cloze { font-weight: bold; color: #0b63c4; }
.card-id { margin-top: 1.5em; font-size: 11px; opacity: 0.45; text-align: right; }
"""


def stylesheet() -> str:
    """The note types' CSS: layout, plus code colours for light and for night mode."""
    light = HtmlFormatter(style=LIGHT_CODE_STYLE)
    dark = HtmlFormatter(style=DARK_CODE_STYLE)
    night = [f"{mode} .highlight" for mode in NIGHT_SELECTORS]
    # Night-mode reset: a token the dark style leaves uncoloured must not keep
    # the light style's dark colour. `.nightMode .highlight span` outranks the
    # light rules; the dark token rules (three classes) outrank the reset.
    reset = ", ".join(f"{selector} span" for selector in night)
    return "\n".join(
        [
            _BASE_CSS,
            "/* Code, light mode */",
            *light.get_background_style_defs(".highlight"),
            ".highlight { color: #1f2328; }",
            f".highlight {{ background: {LIGHT_CODE_BACKGROUND}; border: 1px solid {LIGHT_CODE_BORDER}; }}",
            *light.get_token_style_defs(".highlight"),
            "/* Code, night mode */",
            f"{reset} {{ color: inherit; background-color: transparent; font-weight: inherit; font-style: inherit; }}",
            *dark.get_background_style_defs(night),
            f"{', '.join(night)} {{ border-color: transparent; }}",
            *dark.get_token_style_defs(night),
            ", ".join(f"{mode} .cloze" for mode in NIGHT_SELECTORS) + " { color: #6cb6ff; }",
            "/* Figures, night mode: the SVG figures are drawn dark on an opaque white page; inverted with the",
            "   hues turned back they become light lines on a dark grey page with their own colours, never a",
            "   glaring white panel, on every client (tests/test_notetype.py checks the contrast). */",
            ", ".join(f'{mode} img[src$=".svg"]' for mode in NIGHT_SELECTORS)
            + f" {{ filter: {NIGHT_FIGURE_FILTER}; }}",
            "",
        ]
    )
