"""What reaches a real terminal: control sequences from file names, YAML escapes and the manifest arrive escaped."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

ESC = b"\x1b"
GOOD = "---\nid: alpha-good\ntags: [concept]\nsource: [alpha]\n---\n# A question?\n\nAn answer.\n"


def run_in_terminal(*args: str, cwd: Path) -> bytes:
    """Run `decks` with a pseudo-terminal as its stdout and stderr; return every byte it wrote there."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "generator", *args], cwd=cwd, stdin=subprocess.DEVNULL, stdout=follower,
        stderr=follower, env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"},
    )  # fmt: skip
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closes when the process exits
            break
        if not chunk:
            break
        output += chunk
    process.wait(timeout=60)
    os.close(leader)
    return output


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_hostile_names_reach_a_terminal_escaped(tmp_path: Path) -> None:
    content = tmp_path / "content"
    (content / "alpha").mkdir(parents=True)
    (content / "deckset.yaml").write_text("name: Test Decks\n")
    (content / "alpha" / "topic.yaml").write_text("name: Alpha\ndescription: A.\norder: 1\n")
    (content / "alpha" / "good.md").write_text(GOOD)
    # A file name that would clear the screen and write the clipboard; a YAML escape that would fake success.
    (content / "alpha" / "x\x1b[2J\x1b]52;c;SGVsbG8=\x07.md").write_text(GOOD.replace("alpha-good", "alpha-x"))
    (content / "alpha" / "esc.md").write_text(
        '---\nid: alpha-esc\ntags: []\nsource: [alpha]\n"\\e[2K\\rall good": 1\n---\n# Q?\n\nA.\n'
    )
    output = run_in_terminal("check", "--content", str(content), cwd=tmp_path)
    assert b"error" in output
    assert ESC not in output and b"\x07" not in output, output
    assert b"\\x1b[2J" in output and b"\\x1b[2K\\rall good" in output
