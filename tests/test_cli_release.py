"""Drafts, releases and identity guards through the `decks` command, as a maintainer uses them."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from generator.cli import main
from tests.conftest import T0

CARD = "---\nid: {id}\ntags: [concept]\nsource: [alpha]\n---\n# {question}\n\n{answer}\n"


def decks(tmp_path: Path, *args: str, epoch: int = T0) -> tuple[int, str, str]:
    content, dist = tmp_path / "content", tmp_path / "dist"
    result = CliRunner().invoke(
        main, [*args, "--content", str(content), "--dist", str(dist)], env={"SOURCE_DATE_EPOCH": str(epoch)}
    )
    return result.exit_code, result.stdout, result.stderr


def write(content: Path, name: str, card_id: str, question: str, answer: str, extra: str = "") -> None:
    text = CARD.format(id=card_id, question=question, answer=answer).replace("---\n#", f"{extra}---\n#", 1)
    (content / "alpha" / f"{name}.md").write_text(text)


def test_draft_builds_merge_and_release_stamps(content: Path, tmp_path: Path) -> None:
    write(content, "one", "alpha-one", "First?", "One.")
    assert decks(tmp_path, "build")[0] == 0
    code, out, _ = decks(tmp_path, "release")
    assert code == 0 and "released 1.0.0" in out
    code, _, err = decks(tmp_path, "release")
    assert code == 1 and "nothing to release: the sources match release 1.0.0" in err

    for take in range(3):  # three builds while fixing one card
        write(content, "one", "alpha-one", "First?", f"One, take {take}.")
        assert decks(tmp_path, "build", epoch=T0 + 10 + take)[0] == 0
    changelog = (tmp_path / "dist" / "CHANGELOG.md").read_text()
    assert changelog.count("## Unreleased") == 1 and changelog.count("`alpha-one`") == 2  # 1.0.0 and Unreleased
    code, out, _ = decks(tmp_path, "release", epoch=T0 + 100)
    assert code == 0 and "released 1.0.1" in out
    assert "## Unreleased" not in (tmp_path / "dist" / "CHANGELOG.md").read_text()


def test_id_change_fails_naming_both_ids_and_previous_ids_passes(content: Path, tmp_path: Path) -> None:
    write(content, "one", "alpha-one", "First?", "One.")
    decks(tmp_path, "release")
    write(content, "one", "alpha-uno", "First?", "One.")
    for command in ("build", "check"):
        code, _, err = decks(tmp_path, command)
        assert code == 1
        assert "card id changed from 'alpha-one' to 'alpha-uno'" in err
    write(content, "one", "alpha-uno", "First?", "One.", extra="previous_ids: [alpha-one]\n")
    assert decks(tmp_path, "build", "--strict")[0] == 0


def test_removal_needs_allow_removal_on_release(content: Path, tmp_path: Path) -> None:
    write(content, "one", "alpha-one", "First?", "One.")
    write(content, "two", "alpha-two", "Second?", "Two.")
    decks(tmp_path, "release")
    (content / "alpha" / "two.md").unlink()
    code, _, err = decks(tmp_path, "build")
    assert code == 0 and "card 'alpha-two' of the last release is gone from the sources" in err
    code, _, err = decks(tmp_path, "release")
    assert code == 1 and "--allow-removal" in err
    code, out, _ = decks(tmp_path, "release", "--allow-removal")
    assert code == 0 and "released 2.0.0" in out


def test_check_catches_the_rename_build_catches(content: Path, tmp_path: Path) -> None:
    write(content, "one", "alpha-one", "First?", "One.")
    decks(tmp_path, "release")
    (content / "alpha" / "topic.yaml").write_text("name: Renamed\ndescription: d\norder: 0\n")
    for command in ("build", "check"):
        code, _, err = decks(tmp_path, command)
        assert code == 1
        assert "deck would be renamed from 'Test Decks::Alpha Topic' to 'Test Decks::Renamed'" in err


def test_check_of_paths_reports_only_those_cards(content: Path, tmp_path: Path) -> None:
    write(content, "one", "alpha-one", "First?", "One.")
    (content / "beta" / "bad.md").write_text("---\nid: beta-bad\ntags: [x]\nsource: [beta]\n---\n# Q?\n\n$x\n")
    code, out, err = decks(tmp_path, "check", str(content / "alpha"))
    assert (code, out, err) == (0, "1 cards OK\n", "")  # the broken card elsewhere does not hide this one
    code, _, err = decks(tmp_path, "check", str(content / "beta" / "bad.md"))
    assert code == 1 and "bad.md:8:1: error: '$' has no matching closing '$'" in err


def test_a_scaffold_cannot_ship(content: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["new", "--content", str(tmp_path / "content"), "alpha", "fresh"])
    assert result.exit_code == 0
    code, _, err = decks(tmp_path, "build")
    assert code == 1 and "still the template text: 'Your question?'" in err


def test_changelog_prints_the_unreleased_changes_then_the_latest_release(tmp_path: Path) -> None:
    content = tmp_path / "content"
    (content / "alpha").mkdir(parents=True)
    (content / "deckset.yaml").write_text("name: Test Decks\n")
    (content / "alpha" / "topic.yaml").write_text("name: Alpha\ndescription: A.\norder: 1\n")
    card = content / "alpha" / "one.md"
    card.write_text("---\nid: alpha-one\ntags: [x]\nsource: [alpha]\n---\n# First question?\n\nAn answer.\n")
    dist = tmp_path / "dist"
    args = ["--content", str(content), "--dist", str(dist)]
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    nothing = CliRunner().invoke(main, ["changelog", *args], env=env)
    assert nothing.exit_code == 0 and "## Unreleased" in nothing.output and "`alpha-one`" in nothing.output
    assert CliRunner().invoke(main, ["release", *args], env=env).exit_code == 0
    latest = CliRunner().invoke(main, ["changelog", *args], env=env)
    assert latest.exit_code == 0 and latest.output.startswith("## 1.0.0 (2023-11-14)")
    card.write_text(card.read_text().replace("An answer.", "A better answer."))
    pending = CliRunner().invoke(main, ["changelog", *args], env=env)
    assert pending.output.startswith("## Unreleased") and "### Changed (1)" in pending.output
