"""Located error and warning messages, collected across a whole run."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a source file; line and column are 1-based.

    Line 0 (made by `Location.run`) is no place in a file: the problem is about the run as a
    whole, e.g. a dist/ folder that cannot be written. `path` then names the folder it concerns.
    """

    path: Path
    line: int = 1
    col: int = 1

    @classmethod
    def run(cls, folder: Path) -> Location:
        """The location of a problem with the run (about `folder`), printed without a file position."""
        return cls(folder, 0, 0)

    @property
    def in_file(self) -> bool:
        return self.line > 0

    def __str__(self) -> str:
        if not self.in_file:
            return display_path(self.path)
        return f"{display_path(self.path)}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in the sources, with a hint on how to fix it."""

    severity: Severity
    location: Location
    message: str
    hint: str | None = None

    def format(self) -> str:
        """The diagnostic as terminal lines; nothing from the sources can smuggle a control sequence in."""
        where = f"{self.location}: " if self.location.in_file else ""
        text = visible(f"{where}{self.severity}: {self.message}")
        if self.hint:
            text += "\n  hint: " + "\n".join(visible(line) for line in self.hint.split("\n"))
        return text


def visible(text: str) -> str:
    """`text` with every non-printable character (controls, escapes, bidi overrides, line breaks) escaped.

    File names, YAML values and manifest ids reach error lines; raw, an escape
    sequence could fake a success line, hide errors or write the clipboard.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def error(location: Location, message: str, hint: str | None = None) -> Diagnostic:
    """Make an error diagnostic."""
    return Diagnostic("error", location, message, hint)


def warning(location: Location, message: str, hint: str | None = None) -> Diagnostic:
    """Make a warning diagnostic."""
    return Diagnostic("warning", location, message, hint)


def display_path(path: Path) -> str:
    """Show a path relative to the working directory when it lies below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return os.fspath(path)


def sort_key(diagnostic: Diagnostic) -> tuple[str, int, int, str]:
    """Order diagnostics by file and position, the way editors list them."""
    loc = diagnostic.location
    return (str(loc.path) if loc.in_file else "", loc.line, loc.col, diagnostic.message)  # the run first


def summarize(diagnostics: tuple[Diagnostic, ...] | list[Diagnostic]) -> str:
    """Say how many errors and warnings there are, e.g. '3 errors in 2 files'."""
    errors = [d for d in diagnostics if d.severity == "error"]
    warnings = [d for d in diagnostics if d.severity == "warning"]
    files = {d.location.path for d in diagnostics if d.location.in_file}
    parts = []
    if errors:
        parts.append(_plural(len(errors), "error"))
    if warnings:
        parts.append(_plural(len(warnings), "warning"))
    if not parts:
        return "no problems"
    return f"{' and '.join(parts)} in {_plural(len(files), 'file')}" if files else " and ".join(parts)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


class BuildFailed(Exception):
    """The sources have errors; nothing was written."""

    def __init__(self, diagnostics: tuple[Diagnostic, ...]) -> None:
        super().__init__()
        self.diagnostics = tuple(sorted(diagnostics, key=sort_key))

    def __str__(self) -> str:
        lines = [d.format() for d in self.diagnostics]
        lines.append(summarize(self.diagnostics))
        return "\n".join(lines)
