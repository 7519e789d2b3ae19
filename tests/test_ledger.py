"""Mod times and note ids: kept for unchanged cards, moved forward for changed ones."""

from __future__ import annotations

from generator.ledger import EMPTY, Manifest, compare, next_version, plan_cards, plan_notetype

T0 = 1_700_000_000


def test_new_cards_get_now_and_spaced_note_ids() -> None:
    records = plan_cards([("b", "t", "Q b", "h1"), ("a", "t", "Q a", "h2")], EMPTY, T0)
    assert [(r.id, r.mod, r.note_id) for r in records] == [("a", T0, T0 * 1000), ("b", T0, T0 * 1000 + 100)]


def test_unchanged_keep_mod_changed_move_forward_even_if_clock_is_behind() -> None:
    first = Manifest("1.0.0", (), (), plan_cards([("a", "t", "Q", "h"), ("b", "t", "Q2", "h")], EMPTY, T0))
    second = plan_cards([("a", "t", "Q", "h"), ("b", "t", "Q2", "changed")], first, T0 - 500)
    assert {r.id: r.mod for r in second} == {"a": T0, "b": T0 + 1}
    assert {r.id: r.note_id for r in second} == {r.id: r.note_id for r in first.cards}


def test_note_ids_of_new_cards_never_reuse_old_ones() -> None:
    first = Manifest("1.0.0", (), (), plan_cards([("a", "t", "Q", "h")], EMPTY, T0 + 10))
    second = plan_cards([("a", "t", "Q", "h"), ("c", "t", "Q3", "h")], first, T0)
    assert {r.id: r.note_id for r in second}["c"] > first.cards[0].note_id


def test_notetype_mod_moves_only_with_its_definition() -> None:
    old = plan_notetype("basic", 1, "B", "h", EMPTY, T0)
    previous = Manifest("1.0.0", (), (old,), ())
    assert plan_notetype("basic", 1, "B", "h", previous, T0 + 9).mod == T0
    assert plan_notetype("basic", 1, "B", "h2", previous, T0 + 9).mod == T0 + 9


def test_version_rules() -> None:
    cards = plan_cards([("a", "t", "Q", "h"), ("b", "t", "Q", "h")], EMPTY, T0)
    previous = Manifest("1.2.3", (), (), cards)
    same = compare(previous, cards, ())
    assert next_version(previous, same, topics_changed=False) == "1.2.3"
    edited = compare(previous, plan_cards([("a", "t", "Q", "x"), ("b", "t", "Q", "h")], previous, T0), ())
    assert next_version(previous, edited, topics_changed=False) == "1.2.4"
    added = compare(
        previous, plan_cards([("a", "t", "Q", "h"), ("b", "t", "Q", "h"), ("c", "t", "Q", "h")], previous, T0), ()
    )
    assert next_version(previous, added, topics_changed=False) == "1.3.0"
    removed = compare(previous, plan_cards([("a", "t", "Q", "h")], previous, T0), ())
    assert next_version(previous, removed, topics_changed=False) == "2.0.0"
    assert next_version(previous, same, topics_changed=True) == "1.3.0"
    assert next_version(EMPTY, added, topics_changed=False) == "1.0.0"
