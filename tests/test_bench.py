"""The benchmark in bench/ keeps working: a tiny run of the whole runner, and a deterministic corpus."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.corpus import TOPICS, generate

ROOT = Path(__file__).resolve().parents[1]
SMOKE_CARDS = 30
TOOLS = (
    "decks build (cold)",
    "decks build (no change)",
    "decks build (one edit)",
    "ankdown",
    "simple (Markdown + Pygments + genanki)",
    "decks --help",
)
TOPIC_APKGS = {f"{key}.apkg" for key, _ in TOPICS}


def require_ankdown() -> None:
    if importlib.util.find_spec("ankdown") is not None:
        return
    reason = "ankdown is not installed (pip install -e '.[bench]'), so the benchmark cannot run"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must install the bench extra")
    pytest.skip(reason)


@pytest.mark.slow
def test_runner_builds_every_tool_and_reports_every_row(tmp_path: Path) -> None:
    require_ankdown()
    results = tmp_path / "results.json"
    command = [sys.executable, str(ROOT / "bench" / "run.py"), "--cards", str(SMOKE_CARDS), "--runs", "1", "-v"]
    command += ["--json", str(results), "--workdir", str(tmp_path / "work")]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr

    rows = {row["tool"]: row for row in json.loads(results.read_text(encoding="utf-8"))["rows"]}
    assert set(rows) == set(TOOLS)
    for tool, row in rows.items():
        assert row["cards"] == SMOKE_CARDS
        assert len(row["samples"]) == 1
        assert row["wall_s"] > 0 and row["cpu_s"] > 0 and row["peak_rss_mb"] > 0, tool
        assert f"| {tool} | {SMOKE_CARDS} |" in run.stdout

    for tool in TOOLS[:3]:
        assert {Path(p).name for p in rows[tool]["outputs"]} == TOPIC_APKGS | {"all-topics.apkg"}
        stages = {"rest"} if tool == "decks build (no change)" else {"compile", "plan", "package", "rest"}
        assert set(rows[tool]["stages"][0]) == stages, tool  # -v: a time per stage
        assert f"| {tool} | {SMOKE_CARDS} | " in run.stdout.split("Stages of decks build")[1]
    assert {Path(p).name for p in rows["simple (Markdown + Pygments + genanki)"]["outputs"]} == TOPIC_APKGS
    assert [Path(p).name for p in rows["ankdown"]["outputs"]] == ["ankdown.apkg"]
    for tool in TOOLS[:5]:
        assert all(Path(p).is_file() for p in rows[tool]["outputs"]), tool
        assert rows[tool]["notes"] == SMOKE_CARDS, tool


def test_corpus_is_deterministic_and_a_prefix_of_larger_corpora(tmp_path: Path) -> None:
    stats = generate(tmp_path / "a", 40)
    generate(tmp_path / "b", 40)
    generate(tmp_path / "c", 60)

    def files(root: Path) -> dict[str, str]:
        return {str(p.relative_to(root)): p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.*"))}

    small, larger = files(tmp_path / "a"), files(tmp_path / "c")
    assert small == files(tmp_path / "b")
    assert all(larger[name] == text for name, text in small.items())
    assert len([name for name in small if name.endswith(".md")]) == stats.cards == 40
