"""Drafts and releases: builds gather changes under Unreleased, `release` cuts versions, ids are guarded."""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.build import Options, build
from generator.diagnostics import BuildFailed
from tests.conftest import T0, WriteCard

DAY = 86_400


def card(write_card: WriteCard, topic: str, name: str, question: str, answer: str, extra: str = "") -> None:
    write_card(topic, name, f"id: card-{name}\ntags: [concept]\nsource: [s#1]{extra}", f"# {question}\n\n{answer}\n")


def release(content: Path, dist: Path, now: int, part: str = "auto", **options: bool) -> str:
    return build(content, dist, now, options=Options(**options), release=part).manifest.version


def sections(dist: Path) -> list[str]:
    return (dist / "CHANGELOG.md").read_text().split("\n## ")[1:]


def test_builds_merge_into_one_unreleased_section_and_release_stamps_it(
    content: Path, write_card: WriteCard, tmp_path: Path
) -> None:
    dist = tmp_path / "dist"
    card(write_card, "alpha", "one", "First question?", "First answer.")
    card(write_card, "alpha", "two", "Second question?", "Second answer.")
    card(write_card, "beta", "three", "Third question?", "Third answer.")
    assert build(content, dist, T0).manifest.version == "0.0.0"
    assert release(content, dist, T0) == "1.0.0"
    with pytest.raises(BuildFailed, match="nothing to release"):
        release(content, dist, T0 + 1)

    for n in range(5):  # five builds fixing one card: one entry
        card(write_card, "alpha", "one", "First question?", f"First answer, take {n}.")
        assert build(content, dist, T0 + DAY + n).manifest.version == "1.0.0"
    assert [s.split("\n")[0] for s in sections(dist)] == ["Unreleased", "1.0.0 (2023-11-14)"]
    assert sections(dist)[0].count("card-one") == 1
    assert release(content, dist, T0 + 2 * DAY) == "1.0.1"

    card(write_card, "beta", "four", "Fourth question?", "Fourth answer.")  # add
    (content / "alpha" / "two.md").rename(content / "beta" / "two.md")  # move
    build(content, dist, T0 + 3 * DAY)
    assert release(content, dist, T0 + 3 * DAY) == "1.1.0"

    (content / "beta" / "three.md").unlink()  # remove
    result = build(content, dist, T0 + 4 * DAY)  # a draft build allows it, with a warning
    assert [w.message for w in result.warnings] == ["card 'card-three' of the last release is gone from the sources"]
    with pytest.raises(BuildFailed, match="--allow-removal"):
        release(content, dist, T0 + 4 * DAY)
    assert release(content, dist, T0 + 4 * DAY, allow_removal=True) == "2.0.0"

    titles = [s.split("\n")[0] for s in sections(dist)]
    assert titles == ["2.0.0 (2023-11-18)", "1.1.0 (2023-11-17)", "1.0.1 (2023-11-16)", "1.0.0 (2023-11-14)"]
    latest = sections(dist)
    assert "### Removed (1)" in latest[0]
    assert "- `card-three`: Third question?" in latest[0]
    assert "Anki does not delete cards on import" in latest[0]
    assert "- `card-four`: Fourth question? (Test Decks::Beta Topic)" in latest[1]
    assert "- `card-two`: Second question?: to Test Decks::Beta Topic" in latest[1]
    assert "### Changed (1)\n\n- `card-one`: First question?" in latest[2]


def test_release_part_can_be_chosen(content: Path, write_card: WriteCard, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    card(write_card, "alpha", "one", "First question?", "First answer.")
    assert release(content, dist, T0) == "1.0.0"
    card(write_card, "alpha", "one", "First question?", "Reworded.")
    assert release(content, dist, T0 + DAY, "major") == "2.0.0"


def test_a_changed_id_is_an_error_naming_both_ids(content: Path, write_card: WriteCard, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    card(write_card, "alpha", "one", "First question?", "First answer.")
    release(content, dist, T0)
    path = content / "alpha" / "one.md"
    path.write_text(path.read_text().replace("id: card-one", "id: card-uno"))
    with pytest.raises(BuildFailed) as failure:
        build(content, dist, T0 + DAY, options=Options(strict=True))
    (problem,) = failure.value.diagnostics
    assert (
        problem.message
        == "card id changed from 'card-one' to 'card-uno' (the manifest records 'card-one' for this file)"
    )
    assert "previous_ids: [card-one]" in (problem.hint or "")
    assert problem.location.line == 2


def test_a_readded_question_under_a_new_id_is_an_error(content: Path, write_card: WriteCard, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    card(write_card, "alpha", "one", "First question?", "First answer.")
    release(content, dist, T0)
    (content / "alpha" / "one.md").unlink()
    card(write_card, "beta", "again", "First question?", "First answer.")
    with pytest.raises(BuildFailed, match="same question as the released card 'card-one'"):
        build(content, dist, T0 + DAY)


def test_previous_ids_keep_the_note(content: Path, write_card: WriteCard, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    card(write_card, "alpha", "one", "First question?", "First answer.")
    first = build(content, dist, T0).manifest.card_index()["card-one"]
    release(content, dist, T0)
    (content / "alpha" / "one.md").unlink()
    card(write_card, "alpha", "uno", "First question?", "First answer.", "\nprevious_ids: [card-one]")
    renamed = build(content, dist, T0 + DAY, options=Options(strict=True)).manifest.card_index()["card-uno"]
    assert (renamed.guid_id, renamed.note_id) == ("card-one", first.note_id)
    assert renamed.mod > first.mod  # the Id field changed: users' notes are updated
    assert release(content, dist, T0 + DAY) == "1.0.1"  # a rename is an edit, not a removal


def test_a_rerun_never_duplicates_a_section(content: Path, write_card: WriteCard, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    card(write_card, "alpha", "one", "First question?", "First answer.")
    release(content, dist, T0)
    build(content, dist, T0)
    build(content, dist, T0 + 5)
    assert [s.split("\n")[0] for s in sections(dist)] == ["1.0.0 (2023-11-14)"]
