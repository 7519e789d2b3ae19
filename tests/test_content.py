"""The real content: builds cleanly, covers every seed question, and its table of topics is current."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import pytest

from generator.build import BuildResult, Options, compile_release
from generator.release.manifest import EMPTY

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CONTENT = ROOT / "content"
SEEDS = ROOT.parent / "shared" / "seeds"
SEED_ITEM = re.compile(r"^(?:Question - |Q)?(\d+)(?:\.|\s*:)", re.MULTILINE)
# The unnumbered summary at the end of this seed: vanishing, exploding gradients, batch norm.
EXTRA_ITEMS = {"001_109fc0eff3c94634.txt": ("S1", "S2", "S3")}


@pytest.fixture(scope="module")
def release() -> BuildResult:
    # strict: a warning fails the build; package=False: the checks only, as `decks check` runs them
    return compile_release(CONTENT, EMPTY, 0, options=Options(strict=True, jobs=2), package=False)


def seed_items() -> set[str]:
    if not SEEDS.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"seed documents not found at {SEEDS}")
        pytest.skip(f"seed documents not found at {SEEDS}")
    items = set()
    for path in sorted(SEEDS.glob("*.txt")):
        numbers = SEED_ITEM.findall(path.read_text(encoding="utf-8"))
        items.update(f"{path.name}#{n}" for n in numbers)
        items.update(f"{path.name}#{extra}" for extra in EXTRA_ITEMS.get(path.name, ()))
    return items


def test_content_builds_without_warnings(release: BuildResult) -> None:
    assert release.warnings == ()
    assert len(release.cards) >= 150


def test_every_topic_has_cards(release: BuildResult) -> None:
    counts = Counter(r.card.topic for r in release.cards)
    topics = sorted(p.name for p in CONTENT.iterdir() if (p / "topic.yaml").is_file())
    assert 8 <= len(topics) <= 20
    for topic in topics:
        assert counts[topic] >= 5, f"topic {topic} has only {counts[topic]} cards"


def test_every_card_names_existing_seed_items(release: BuildResult) -> None:
    known = seed_items()
    unknown = {
        f"{r.card.path.relative_to(ROOT)}: {s}"
        for r in release.cards
        for s in r.card.sources
        if s not in known and s != r.card.topic  # the topic key marks material beyond the seeds
    }
    assert not unknown
    assert all(r.card.sources for r in release.cards)


def test_every_seed_item_is_covered(release: BuildResult) -> None:
    covered = {s for r in release.cards for s in r.card.sources}
    missing = sorted(seed_items() - covered)
    assert not missing, f"seed items without a card: {missing}"
    assert len(seed_items()) == 10 + 48 + 3 + 11 + 89 + 22
