"""The manifest and release planning: mod times, note ids, versions, damaged manifests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generator.diagnostics import Location
from generator.release.manifest import EMPTY, Changes, Manifest, bump, manifest_json, read_manifest
from generator.release.plan import CardState, plan_cards, plan_notetype

T0 = 1_700_000_000


def states(*items: tuple[str, str]) -> list[CardState]:
    return [CardState(i, (), f"t/{i}.md", "t", f"Q {i}", h, Location(Path(f"t/{i}.md"), 2)) for i, h in items]


def test_new_cards_get_now_and_spaced_note_ids() -> None:
    records, removed, problems, _ = plan_cards(states(("b", "h1"), ("a", "h2")), EMPTY, T0)
    assert [(r.id, r.mod, r.note_id) for r in records] == [("a", T0, T0 * 1000), ("b", T0, T0 * 1000 + 100)]
    assert (removed, problems) == ((), [])


def test_unchanged_keep_mod_changed_move_forward_even_if_clock_is_behind() -> None:
    first = Manifest("1.0.0", (), (), plan_cards(states(("a", "h"), ("b", "h")), EMPTY, T0)[0])
    second, _, _, _ = plan_cards(states(("a", "h"), ("b", "changed")), first, T0 - 500)
    assert {r.id: r.mod for r in second} == {"a": T0, "b": T0 + 1}
    assert {r.id: r.note_id for r in second} == {r.id: r.note_id for r in first.cards}


def test_note_ids_of_new_cards_never_reuse_old_ones() -> None:
    first = Manifest("1.0.0", (), (), plan_cards(states(("a", "h")), EMPTY, T0 + 10)[0])
    second, _, _, _ = plan_cards(states(("a", "h"), ("c", "h")), first, T0)
    assert {r.id: r.note_id for r in second}["c"] == (T0 + 10) * 1000 + 100


def test_notetype_mod_moves_only_with_its_definition() -> None:
    old = plan_notetype("basic", 1, "B", "h", EMPTY, T0)
    previous = Manifest("1.0.0", (), (old,), ())
    assert plan_notetype("basic", 1, "B", "h", previous, T0 + 50).mod == T0
    assert plan_notetype("basic", 1, "B", "new", previous, T0 - 50).mod == T0 + 1


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (Changes((), ("a",), (), (), ()), "1.2.4"),
        (Changes(("a",), (), (), (), ()), "1.3.0"),
        (Changes((), (), (), ("a",), ()), "1.3.0"),
        (Changes((), (), ("a",), (), ()), "2.0.0"),
        (Changes((), (), (), (), ("basic",)), "1.2.4"),
    ],
)
def test_bump_follows_semantic_versioning(changes: Changes, expected: str) -> None:
    assert bump("1.2.3", changes) == expected
    assert bump("0.0.0", changes) == "1.0.0"


def test_manifest_round_trips(tmp_path: Path) -> None:
    records, _, _, _ = plan_cards(states(("a", "h")), EMPTY, T0)
    manifest = Manifest("1.0.0", (), (plan_notetype("basic", 1, "B", "h", EMPTY, T0),), records)
    path = tmp_path / "manifest.json"
    path.write_text(manifest_json(manifest))
    assert read_manifest(path) == (manifest, [])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "expected a JSON object"),
        ('{"format": 2, "version": "1.x", "decks": [], "notetypes": [], "cards": []}', "invalid version '1.x'"),
        ('{"format": 9}', "unsupported manifest format 9"),
        ("{", "Expecting property name"),
        ('{"format": 2, "version": "1.0.0", "decks": {}, "notetypes": [], "cards": []}', "'decks' must be a list"),
    ],
)
def test_damaged_manifests_are_located_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(text)
    manifest, (problem,) = read_manifest(path)
    assert manifest is None
    assert message in problem.message
    assert problem.location.path == path


def test_a_card_with_a_bad_note_id_is_refused(tmp_path: Path) -> None:
    records, _, _, _ = plan_cards(states(("a", "h")), EMPTY, T0)
    data = json.loads(manifest_json(Manifest("1.0.0", (), (), records)))
    data["cards"][0]["note_id"] = "x"
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(data))
    assert "CardRecord.note_id has the wrong type: 'x'" in read_manifest(path)[1][0].message
    data["cards"][0]["note_id"] = -5
    path.write_text(json.dumps(data))
    assert "out of range" in read_manifest(path)[1][0].message
