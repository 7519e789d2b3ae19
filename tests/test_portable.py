"""`decks` starts and builds where the Linux-only calls are missing (Windows, macOS)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import T0

# Run before the generator is imported: no fcntl, no folder file descriptors, no CPU affinity,
# no interval timers, no libc to find (so no renameat2 or prctl).
WITHOUT_LINUX = textwrap.dedent(
    """
    import ctypes.util, os, signal, sys
    sys.modules["fcntl"] = None
    for name in ("O_DIRECTORY", "sched_getaffinity"):
        if hasattr(os, name):
            delattr(os, name)
    if hasattr(signal, "setitimer"):
        delattr(signal, "setitimer")
    ctypes.util.find_library = lambda name: None
    from generator.cli import main
    main()
    """
)


def run_without_linux(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(T0)}
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_LINUX, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_decks_starts_without_linux_only_calls(tmp_path: Path) -> None:
    result = run_without_linux("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "build" in result.stdout


def test_a_build_and_a_rebuild_pass_with_the_fallbacks(content: Path, sample_cards: None, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    for _ in range(2):  # the second build replaces files in place, under the lock file
        result = run_without_linux("build", "--content", str(content), "--dist", str(dist), "-q", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert (dist / "manifest.json").is_file() and (dist / "alpha.apkg").is_file()
    assert not list(tmp_path.glob(".dist.lock")), "the lock file is released"
