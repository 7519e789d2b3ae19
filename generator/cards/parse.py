"""Split a card file into front matter and body; read YAML strictly.

The YAML is composed into nodes and never resolved: every scalar stays the exact
text the author wrote, so `no`, `010` or `2024-01-01` are never silently turned
into a boolean, an octal number or a date. Duplicate keys are errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from generator.diagnostics import Diagnostic, Location, error

FRONT_MATTER_FENCE = "---"
# libyaml composes the same nodes, with the same positions, at a fraction of the cost.
YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# The usual front matter, `key: word` or `key: [word, word]` per line, read without composing YAML.
# A word here is a plain scalar that YAML keeps as written: no indicator first, no space, comma,
# bracket, colon or quote. Anything else goes to the YAML loader, with its errors.
_WORD = r"[A-Za-z0-9_][A-Za-z0-9_.#/+-]*"
_SIMPLE_LINE = re.compile(rf"([A-Za-z_][A-Za-z0-9_]*): (?:({_WORD})|\[((?:{_WORD}(?:, {_WORD})*)?)\])")


@dataclass(frozen=True, slots=True)
class Entry:
    """A front-matter value: a string or a list of strings, with its position."""

    value: str | tuple[str, ...]
    location: Location


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """A card file split into its raw front matter and its body."""

    path: Path
    meta: dict[str, Entry]
    meta_location: Location
    body: str
    body_line: int  # 1-based line of the body's first line


def parse_card_file(path: Path, text: str) -> tuple[ParsedFile | None, list[Diagnostic]]:
    """Split `text` (the contents of `path`) into front matter and body."""
    lines = text.split("\n")
    if not lines or lines[0].rstrip() != FRONT_MATTER_FENCE:
        return None, [
            error(
                Location(path, 1, 1),
                "missing front matter",
                "start the file with a '---' line, then 'id: …' and 'tags: […]', then '---'",
            )
        ]
    for index in range(1, len(lines)):
        if lines[index].rstrip() == FRONT_MATTER_FENCE:
            closing = index
            break
    else:
        return None, [
            error(
                Location(path, 1, 1),
                "front matter is never closed",
                "end the front matter with a line that is exactly '---'",
            )
        ]
    yaml_text = "\n".join(lines[1:closing])
    meta, diagnostics = read_yaml_mapping(path, yaml_text, first_line=2)
    if meta is None:
        return None, diagnostics
    body = "\n".join(lines[closing + 1 :])
    parsed = ParsedFile(path, meta, Location(path, 1, 1), body, body_line=closing + 2)
    return parsed, diagnostics


def read_yaml_mapping(path: Path, text: str, first_line: int = 1) -> tuple[dict[str, Entry] | None, list[Diagnostic]]:
    """Read a YAML mapping of strings and string lists, with each value's location.

    `first_line` is the file line that the YAML text starts on, so that positions
    point into the file rather than into the YAML block.
    """

    simple = _simple_mapping(path, text, first_line)
    if simple is not None:
        return simple, []

    def locate(mark: yaml.Mark | None) -> Location:
        if mark is None:
            return Location(path, first_line, 1)
        return Location(path, mark.line + first_line, mark.column + 1)

    try:
        try:
            root = yaml.compose(text, Loader=YAML_LOADER)
        except yaml.MarkedYAMLError:
            # The pure-Python loader places some errors better (e.g. an unclosed list at the end).
            root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        return None, [error(locate(None), "YAML nested too deeply", "use 'key: value' lines and flat lists")]
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or exc.context or "invalid YAML"
        return None, [
            error(
                locate(exc.problem_mark),
                f"invalid YAML: {problem}",
                "check indentation, and quote values that contain ': ' or start with a special character",
            )
        ]
    if root is None:
        return {}, []
    if not isinstance(root, yaml.MappingNode):
        return None, [error(locate(root.start_mark), "expected 'key: value' lines", "write one 'key: value' per line")]

    entries: dict[str, Entry] = {}
    diagnostics: list[Diagnostic] = []
    for key_node, value_node in root.value:
        key_location = locate(key_node.start_mark)
        if not isinstance(key_node, yaml.ScalarNode):
            diagnostics.append(error(key_location, "a key must be a plain name"))
            continue
        key = key_node.value
        if key in entries:
            first = entries[key].location
            diagnostics.append(
                error(
                    key_location,
                    f"duplicate key '{key}' (first given on line {first.line})",
                    "keep one of the two",
                )
            )
            continue
        value = _plain_value(value_node)
        if value is None:
            diagnostics.append(
                error(
                    locate(value_node.start_mark),
                    f"'{key}' must be a string or a list of strings",
                    "nested mappings are not allowed here",
                )
            )
            continue
        entries[key] = Entry(value, locate(value_node.start_mark))
    return entries, diagnostics


def _simple_mapping(path: Path, text: str, first_line: int) -> dict[str, Entry] | None:
    """The entries of front matter in the usual shape, as the YAML reading gives them; None for any other."""
    entries: dict[str, Entry] = {}
    for offset, line in enumerate(text.split("\n")):
        match = _SIMPLE_LINE.fullmatch(line)
        if match is None or match[1] in entries:
            return None  # duplicate keys, comments, quotes, blank lines: the loader and its messages
        key, scalar, items = match.groups()
        value: str | tuple[str, ...] = scalar if scalar is not None else tuple(items.split(", ") if items else ())
        entries[key] = Entry(value, Location(path, first_line + offset, len(key) + 3))
    return entries


def _plain_value(node: yaml.Node) -> str | tuple[str, ...] | None:
    if isinstance(node, yaml.ScalarNode):
        return str(node.value)
    if isinstance(node, yaml.SequenceNode) and all(isinstance(item, yaml.ScalarNode) for item in node.value):
        return tuple(str(item.value) for item in node.value)
    return None
