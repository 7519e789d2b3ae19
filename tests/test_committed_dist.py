"""The committed dist/ is exactly what content/ builds, and its checksums verify."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from generator.apkg.ids import note_guid
from generator.cli import main
from generator.release.identities import LEDGER_FILE, read_ledger

# The repository's own dist/: what the everyday loop must not depend on (it builds all the content).
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_committed_dist_matches_content() -> None:
    result = CliRunner().invoke(
        main, ["build", "--check", "--content", str(ROOT / "content"), "--dist", str(ROOT / "dist")]
    )
    assert result.exit_code == 0, result.stderr
    assert "is up to date" in result.stdout


def test_checksums_verify_with_sha256sum() -> None:
    completed = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=ROOT / "dist", capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    listed = sorted([*(p.name for p in (ROOT / "dist").glob("*.apkg")), "README.md"])
    assert sorted(line.split(": ")[0] for line in completed.stdout.splitlines()) == listed


def test_manifest_describes_every_deck() -> None:
    manifest = json.loads((ROOT / "dist" / "manifest.json").read_text())
    topics = sorted(p.name for p in (ROOT / "content").iterdir() if (p / "topic.yaml").is_file())
    assert sorted(d["topic"] for d in manifest["decks"]) == topics
    assert sum(d["notes"] for d in manifest["decks"]) == len(manifest["cards"])
    assert {n["model_id"] for n in manifest["notetypes"]} == {1246741619, 1129797610, 1969982484}


def test_check_names_the_deck_after_an_unbuilt_edit(tmp_path: Path) -> None:
    content = tmp_path / "content"
    dist = tmp_path / "dist"
    shutil.copytree(ROOT / "content", content)
    shutil.copytree(ROOT / "dist", dist)
    card = sorted((content / "cnn").glob("*.md"))[0]
    card.write_text(card.read_text() + "\nOne more sentence.\n")
    result = CliRunner().invoke(main, ["build", "--check", "--content", str(content), "--dist", str(dist)])
    assert result.exit_code == 1
    assert f"{dist / 'cnn.apkg'}: out of date: cards changed: " in result.stderr
    assert f"{dist / 'rnn.apkg'}" not in result.stderr  # a one-card edit leaves the other decks as they are


def test_the_committed_ledger_knows_every_released_card_with_its_guid() -> None:
    ledger, problems = read_ledger(ROOT / "dist" / LEDGER_FILE)
    assert ledger is not None, problems
    manifest = json.loads((ROOT / "dist" / "manifest.json").read_text())
    released = {c["id"]: c for c in manifest["cards"] if c["released_hash"] is not None}
    index = ledger.index()
    assert released
    for card_id, record in released.items():
        assert index[card_id].guid == note_guid(record["guid_id"])
        assert index[card_id].note_id == record["note_id"]
