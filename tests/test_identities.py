"""The identity ledger: sequences of ordinary edits never hand one card's history to another."""

from __future__ import annotations

import json
import shutil
import sqlite3
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from generator.apkg.ids import note_guid
from generator.build import Options, build
from generator.cli import main
from generator.diagnostics import BuildFailed
from generator.release.identities import LEDGER_FILE, read_ledger
from tests.conftest import T0, WriteCard

DAY = 86_400


def write(
    content: Path, path: str, card_id: str, question: str, answer: str = "An answer.", previous: str = ""
) -> None:
    file = content / path
    file.parent.mkdir(exist_ok=True)
    extra = f"\nprevious_ids: [{previous}]" if previous else ""
    file.write_text(
        f"---\nid: {card_id}\ntags: [concept]\nsource: [s#1]{extra}\n---\n# {question}\n\n{answer}\n", encoding="utf-8"
    )


def release(content: Path, dist: Path, now: int, **options: bool) -> str:
    return build(content, dist, now, options=Options(**options), release="auto").manifest.version


def notes(apkg: Path) -> dict[str, tuple[str, str]]:
    """GUID -> (Id field, Front field) of every note in a package."""
    with zipfile.ZipFile(apkg) as archive, archive.open("collection.anki2") as handle:
        data = handle.read()
    db = apkg.with_suffix(".anki2")
    db.write_bytes(data)
    rows = sqlite3.connect(db).execute("select guid, flds from notes").fetchall()
    db.unlink()
    result: dict[str, tuple[str, str]] = {}
    for guid, fields in rows:
        front, _back, card_id = fields.split("\x1f")
        assert guid not in result, f"two notes share the GUID {guid}"
        result[guid] = (card_id, front.removeprefix("<p>").removesuffix("</p>"))
    return result


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    return tmp_path / "dist"


# --- one test per route that used to hand a history to the wrong card ------------------------------


def test_a_renamed_id_is_never_reused_even_after_its_previous_ids_line_is_gone(content: Path, dist: Path) -> None:
    write(content, "alpha/a.md", "alpha-a", "What is A?")
    release(content, dist, T0)
    write(content, "alpha/a.md", "alpha-renamed", "What is A?", previous="alpha-a")
    release(content, dist, T0 + DAY)
    write(content, "alpha/a.md", "alpha-renamed", "What is A?")  # the previous_ids line dropped
    write(content, "alpha/new.md", "alpha-a", "Something else entirely?")
    with pytest.raises(BuildFailed, match=r"id 'alpha-a' was renamed to 'alpha-renamed' in release 1\.0\.1"):
        build(content, dist, T0 + 2 * DAY)

    (content / "alpha" / "new.md").unlink()  # without the newcomer: the rename is still remembered
    build(content, dist, T0 + 3 * DAY)
    assert notes(dist / "alpha.apkg") == {note_guid("alpha-a"): ("alpha-renamed", "What is A?")}


def test_two_files_swapping_their_ids_is_an_error_naming_both(content: Path, dist: Path) -> None:
    write(content, "alpha/a.md", "alpha-a", "What is A?")
    write(content, "alpha/b.md", "alpha-b", "What is B?")
    release(content, dist, T0)
    write(content, "alpha/a.md", "alpha-b", "What is A?")
    write(content, "alpha/b.md", "alpha-a", "What is B?")
    with pytest.raises(BuildFailed) as failure:
        build(content, dist, T0 + DAY)
    messages = [d.message for d in failure.value.diagnostics]
    assert any("'alpha-b' now asks the question released under 'alpha-a'" in m for m in messages), messages
    assert any("'alpha-a' now asks the question released under 'alpha-b'" in m for m in messages), messages


def test_a_released_removal_stays_removed_until_revived_explicitly(content: Path, dist: Path) -> None:
    write(content, "alpha/a.md", "alpha-a", "What is A?")
    write(content, "alpha/keep.md", "alpha-keep", "What stays?")
    release(content, dist, T0)
    (content / "alpha" / "a.md").unlink()
    assert release(content, dist, T0 + DAY, allow_removal=True) == "2.0.0"

    write(content, "beta/again.md", "beta-again", "What is A?")  # the same question, a new id
    with pytest.raises(BuildFailed, match=r"same question as 'alpha-a', removed in release 2\.0\.0"):
        build(content, dist, T0 + 2 * DAY)
    write(content, "beta/again.md", "alpha-a", "A new question?")  # the removed id itself
    with pytest.raises(BuildFailed, match=r"id 'alpha-a' belongs to a card removed in release 2\.0\.0"):
        build(content, dist, T0 + 2 * DAY)

    write(content, "beta/again.md", "beta-again", "What is A?", previous="alpha-a")  # declared: revived
    release(content, dist, T0 + 3 * DAY)
    assert notes(dist / "beta.apkg") == {note_guid("alpha-a"): ("beta-again", "What is A?")}


def test_previous_ids_works_after_a_move_an_id_change_and_a_rewording(content: Path, dist: Path) -> None:
    write(content, "alpha/one.md", "alpha-one", "What is one?")
    release(content, dist, T0)
    (content / "alpha" / "one.md").unlink()
    write(content, "beta/other.md", "beta-other", "What, exactly, is one?")
    result = build(content, dist, T0 + DAY)  # a draft without previous_ids: a removal and an addition
    assert result.changes.removed == ("alpha-one",)
    write(content, "beta/other.md", "beta-other", "What, exactly, is one?", previous="alpha-one")
    result = build(content, dist, T0 + 2 * DAY)
    assert (result.changes.added, result.changes.removed) == ((), ())
    assert result.changes.moved == ("beta-other",)
    release(content, dist, T0 + 3 * DAY)  # no --allow-removal needed
    assert notes(dist / "beta.apkg") == {note_guid("alpha-one"): ("beta-other", "What, exactly, is one?")}


def test_a_one_card_edit_changes_one_deck(content: Path, dist: Path) -> None:
    write(content, "alpha/a.md", "alpha-a", "What is A?")
    write(content, "beta/b.md", "beta-b", "What is B?")
    release(content, dist, T0)
    before = {p.name: p.read_bytes() for p in dist.iterdir()}
    write(content, "alpha/a.md", "alpha-a", "What is A?", answer="A better answer.")
    build(content, dist, T0 + DAY)
    after = {p.name: p.read_bytes() for p in dist.iterdir()}
    changed = sorted(name for name in after if after[name] != before.get(name))
    assert changed == ["CHANGELOG.md", "SHA256SUMS", "all-topics.apkg", "alpha.apkg", "manifest.json"]


def test_the_ledger_is_written_by_release_only_and_history_prints_a_lineage(content: Path, dist: Path) -> None:
    write(content, "alpha/a.md", "alpha-a", "What is A?")
    build(content, dist, T0)
    ledger, _ = read_ledger(dist / LEDGER_FILE)
    assert ledger is not None and ledger.identities == ()  # a draft releases nothing
    release(content, dist, T0)
    write(content, "alpha/a.md", "alpha-b", "What is A?", previous="alpha-a")
    release(content, dist, T0 + DAY)
    rows = json.loads((dist / LEDGER_FILE).read_text())["identities"]
    assert [(r["id"], r["state"], r["successor"], r["guid"]) for r in rows] == [
        ("alpha-a", "renamed", "alpha-b", note_guid("alpha-a")),
        ("alpha-b", "live", None, note_guid("alpha-a")),
    ]
    result = CliRunner().invoke(main, ["history", "alpha-b", "--dist", str(dist)])
    assert result.exit_code == 0, result.output
    assert "alpha-a: renamed to alpha-b in 1.0.1" in result.output
    assert "alpha-b: live since 1.0.1" in result.output
    unknown = CliRunner().invoke(main, ["history", "alpha-zzz", "--dist", str(dist)])
    assert unknown.exit_code == 1 and "never released" in unknown.output


def test_a_damaged_ledger_is_a_located_error(content: Path, dist: Path, write_card: WriteCard) -> None:
    write(content, "alpha/a.md", "alpha-a", "What is A?")
    release(content, dist, T0)
    (dist / LEDGER_FILE).write_text('{"format": 1, "identities": [{"id": "../x"}]}')
    with pytest.raises(BuildFailed, match=r"identities\.json:1:1: error: cannot read the identity ledger"):
        build(content, dist, T0 + DAY)


def test_copying_dist_between_branches_resolves_with_one_build(content: Path, dist: Path, tmp_path: Path) -> None:
    """The README's recipe for a dist/ conflict: take either side's dist/, then build."""
    write(content, "alpha/a.md", "alpha-a", "What is A?")
    release(content, dist, T0)
    other = tmp_path / "other"
    shutil.copytree(dist, other)
    write(content, "alpha/b.md", "alpha-b", "What is B?")
    build(content, other, T0 + DAY)
    assert build(content, dist, T0 + DAY).files == build(content, other, T0 + DAY).files


def test_a_guid_key_cannot_take_over_a_released_note(content: Path, dist: Path) -> None:
    """`guid:` keeps an imported note's GUID; spelling another released note's GUID there is refused."""
    write(content, "alpha/a.md", "alpha-a", "What is A?")
    release(content, dist, T0)
    taken = note_guid("alpha-a").replace('"', '\\"')
    (content / "beta" / "b.md").write_text(
        f'---\nid: beta-b\ntags: [x]\nsource: [s#1]\nguid: "{taken}"\n---\n# Something else?\n\nAn answer.\n'
    )
    with pytest.raises(BuildFailed, match=r"cards 'alpha-a' and 'beta-b' would share one note"):
        build(content, dist, T0 + DAY)
    (content / "alpha" / "a.md").unlink()  # even once the released card is gone, its GUID stays its own
    with pytest.raises(BuildFailed, match=r"card 'beta-b' would take the GUID of the released note 'alpha-a'"):
        build(content, dist, T0 + DAY)
