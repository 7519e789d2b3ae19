"""Headless Chromium for the browser tests: lay out a page, read back what a script reports, take screenshots.

A page under test ends with a script that replaces the document by
`<pre id="report">JSON</pre>`; `--dump-dom` prints the result.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
REPORT = re.compile(r'<pre id="report">(.*)</pre>', re.DOTALL)

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="needs Debian's chromium (apt-get install chromium)"
)


def chromium() -> str:
    """The browser's path; CI must have it."""
    assert CHROMIUM is not None, "CI must install chromium"
    return CHROMIUM


def run_chromium(url: str, profile: Path, *args: str, timeout: int = 180) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium on `url` with a fresh profile folder."""
    return subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", *args, url],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )


def report(url: str, profile: Path, *, width: int = 1280, height: int = 900, wait_ms: int = 0) -> Any:
    """Load `url` and return the JSON its report script leaves in `<pre id="report">`.

    `wait_ms` lets timers and frames settle first (virtual time, so it costs little).
    """
    args = [f"--window-size={width},{height}"]
    if wait_ms:
        args.append(f"--virtual-time-budget={wait_ms}")
    result = run_chromium(url, profile, *args, "--dump-dom")
    match = REPORT.search(result.stdout)
    assert match, result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads(html.unescape(match.group(1)))


def screenshot(url: str, target: Path, profile: Path, *, width: int = 1280, height: int = 1000) -> Path:
    """Save a PNG of the top `height` pixels of `url` at window width `width`."""
    run_chromium(
        url, profile, f"--window-size={width},{height}", "--virtual-time-budget=3000", f"--screenshot={target}"
    )
    assert target.is_file() and target.stat().st_size > 1000
    return target
