"""The build's steps: packaging on several processes, and problems about the run as a whole."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from generator import build as build_module
from generator.apkg import package as package_module
from generator.build import Options, build
from generator.cli import main
from generator.diagnostics import BuildFailed, Location, error, summarize
from generator.release.publish import PublishError, StagedFile
from tests.conftest import T0


def test_packages_made_in_parallel_are_the_serial_bytes(
    content: Path, sample_cards: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = build(content, tmp_path / "serial", T0, options=Options(jobs=1))
    monkeypatch.setattr(build_module, "PARALLEL_PACKAGE_NOTES", 0)  # the sample is small: parallel anyway
    parallel = build(content, tmp_path / "parallel", T0, options=Options(jobs=2))
    assert parallel.files == serial.files
    assert list(parallel.files) == list(serial.files)


def test_a_problem_with_the_run_has_no_file_position(tmp_path: Path) -> None:
    problem = error(Location.run(tmp_path / "dist"), "cannot write dist", "check free space and permissions")
    assert problem.format() == "error: cannot write dist\n  hint: check free space and permissions"
    assert summarize([problem]) == "1 error"
    located = error(Location(tmp_path / "a.md", 3, 1), "bad")
    assert summarize([problem, located]) == "2 errors in 1 file"
    assert str(BuildFailed((located, problem))).splitlines()[0] == "error: cannot write dist"  # the run first


def test_nothing_to_release_is_reported_about_the_run(content: Path, sample_cards: None, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    build(content, dist, T0, release="auto")
    with pytest.raises(BuildFailed) as failure:
        build(content, dist, T0 + 1, release="auto")
    (problem,) = failure.value.diagnostics
    assert not problem.location.in_file
    assert problem.format().startswith("error: nothing to release: the sources match release 1.0.0")


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system's temporary folder, for this test alone: whatever a build leaves there shows."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_packages_go_to_dist_through_disk_and_leave_no_staging(
    content: Path, sample_cards: None, tmp_path: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "dist"
    result = build(content, dist, T0)
    # The packages, and the manifest with a line per card: the files that grow with the cards.
    staged = {name: output for name, output in result.files.items() if name.endswith(".apkg")}
    assert len(staged) == 3  # two topics and all-topics.apkg
    staged["manifest.json"] = result.files["manifest.json"]
    for name, output in staged.items():
        assert isinstance(output, StagedFile)
        assert output.path == dist / name  # where it now lies
        assert output.sha256 == hashlib.sha256((dist / name).read_bytes()).hexdigest()
        assert output.size == (dist / name).stat().st_size
    assert not any(isinstance(output, StagedFile) for name, output in result.files.items() if name not in staged)
    assert list(scratch.iterdir()) == []

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PublishError("cannot write dist: disk full")

    monkeypatch.setattr(build_module, "publish", refuse)
    with pytest.raises(BuildFailed):
        build(content, tmp_path / "other", T0)
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize(("module", "writer", "what"), [
    (package_module, "write_package", "the packages"),
    (build_module, "_write_lines", "the manifest"),
])  # fmt: skip
def test_a_full_scratch_disk_is_a_clear_error_that_leaves_dist_alone(
    content: Path,
    sample_cards: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    module: object,
    writer: str,
    what: str,
) -> None:
    dist = tmp_path / "dist"
    build(content, dist, T0)
    before = {p.name: p.read_bytes() for p in dist.iterdir()}

    def disk_full(target: Path, *_args: object) -> str:
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(module, writer, disk_full)
    (content / "alpha" / "new.md").write_text("---\nid: alpha-new\ntags: []\nsource: [alpha]\n---\n# New?\n\nYes.\n")
    result = CliRunner().invoke(main, ["build", "--content", str(content), "--dist", str(dist), "--no-cache"])
    assert result.exit_code == 1
    assert f"error: cannot write {what}: No space left on device: " in result.stderr
    assert "hint: check the free space and permissions of the temporary folder (TMPDIR)" in result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert {p.name: p.read_bytes() for p in dist.iterdir()} == before


@pytest.mark.skipif(sys.platform == "win32", reason="Windows ends a process on SIGTERM without running a handler")
def test_a_terminated_build_unwinds_and_leaves_no_scratch_folder(
    content: Path, sample_cards: None, tmp_path: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = package_module.write_package

    def terminated_midway(target: Path, *args: object) -> str:
        real_write(target, *args)  # type: ignore[arg-type]
        os.kill(os.getpid(), signal.SIGTERM)  # as a cancelled CI job or `timeout` sends it
        raise AssertionError("SIGTERM did not stop the build")

    monkeypatch.setattr(package_module, "write_package", terminated_midway)
    dist = tmp_path / "dist"
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        result = CliRunner().invoke(main, ["build", "--content", str(content), "--dist", str(dist), "--no-cache"])
        assert {signum: signal.getsignal(signum) for signum in before} == before  # given back when it ended
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
    assert result.exit_code == 128 + signal.SIGTERM
    assert list(scratch.iterdir()) == []
    assert not dist.exists() or not any(dist.iterdir())
