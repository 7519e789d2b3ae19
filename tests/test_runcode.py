"""Running card code: every way a card can fail is a located error, and the counts are of what ran.

These cards are tiny and need no Keras, so they run in a second or two. The
warm path (a forked child of a pre-started interpreter) and the cold path (a
new interpreter, as for TensorFlow cards) are both exercised.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner

from generator.cards.parse import parse_card_file
from generator.cards.validate import validate_file
from generator.cli import main
from generator.verify import child as code_prelude
from generator.verify import runner as runcode
from generator.verify.runner import Program, RunReport, extract_program, missing_verify_extra, run_programs
from tests.conftest import WriteCard, skip_or_fail

# The card file starts with 7 lines (front matter, question, blank line): its body starts on line 8.
HEADER = "---\nid: alpha-card\ntags: [code]\nsource: [alpha]\n---\n# What does this print?\n\n"
BODY_LINE = 8


def card(tmp_path: Path, body: str, name: str = "card") -> Program:
    """A validated card file with this body, as the program the runner sees."""
    path = tmp_path / "alpha" / f"{name}.md"
    path.parent.mkdir(exist_ok=True)
    text = HEADER.replace("alpha-card", f"alpha-{name}") + textwrap.dedent(body).lstrip("\n")
    path.write_text(text, encoding="utf-8")
    parsed, problems = parse_card_file(path, text)
    assert parsed is not None, problems
    validated, problems = validate_file(parsed, "alpha")
    assert validated is not None, [p.format() for p in problems]
    return extract_program(validated)


def messages(report: RunReport) -> list[str]:
    return [p.format() for p in report.problems]


@pytest.fixture(params=["warm", "cold"])
def path_taken(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run through the warm interpreter, or start each card cold as TensorFlow cards are."""
    if request.param == "cold":
        monkeypatch.setattr(Program, "backend", property(lambda self: "tensorflow"))
    return str(request.param)


def test_outputs_are_compared_and_counted(tmp_path: Path, path_taken: str) -> None:
    program = card(
        tmp_path,
        """
        ```python
        print(2 + 2)
        ```

        ```output
        5
        ```

        ```python
        print("ok")
        ```

        ```output
        ok
        ```

        ```python no-run: shows an API that no longer exists
        tf.Session()
        ```
        """,
    )
    report = run_programs([program], workers=1)
    path = program.path
    assert messages(report) == [
        f"{path}:{BODY_LINE + 4}:1: error: printed output differs from the card's output block\n"
        "  hint: expected:\n    5\n  actual:\n    4"
    ]
    assert (report.programs, report.blocks_run, report.blocks_exempt, report.outputs_checked) == (1, 2, 1, 2)
    assert report.blocks_not_run == 0
    assert report.summary() == "code: 2 blocks run in 1 cards, 1 exempt, 2 outputs checked, 1 failures"


def test_an_exception_names_its_line_and_later_blocks_count_as_not_run(tmp_path: Path, path_taken: str) -> None:
    program = card(
        tmp_path,
        """
        ```python
        x = 1
        print(undefined_name)
        ```

        ```python
        print(x)
        ```

        ```output
        1
        ```
        """,
    )
    report = run_programs([program], workers=1)
    assert messages(report) == [
        f"{program.path}:{BODY_LINE + 2}:1: error: code raised NameError: name 'undefined_name' is not defined\n"
        "  hint: fix the code, or mark the fence 'no-run: <why>'"
    ]
    assert (report.programs, report.blocks_run, report.outputs_checked, report.blocks_not_run) == (1, 1, 0, 1)
    assert report.summary().endswith("0 outputs checked, 1 failures, 1 not run")


def test_import_errors_say_what_to_install(tmp_path: Path) -> None:
    unknown = card(tmp_path, "```python\nimport no_such_package_for_cards\n```\n", "unknown")
    verify = card(tmp_path, "```python\nimport numpy.no_such_module_for_cards\n```\n", "verify")
    report = run_programs([unknown, verify], workers=1)
    assert messages(report) == [
        f"{unknown.path}:{BODY_LINE + 1}:1: error: code raised ModuleNotFoundError: "
        "No module named 'no_such_package_for_cards'\n"
        "  hint: the 'verify' extra does not install it: change the import, or mark the fence 'no-run: <why>'",
        f"{verify.path}:{BODY_LINE + 1}:1: error: code raised ModuleNotFoundError: "
        f"No module named '{'numpy.no_such_module_for_cards' if has_module('numpy') else 'numpy'}'\n"
        "  hint: install the 'verify' extra: pip install -e '.[verify]'",
    ]


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


# Burning a CPU-second per path: the cold one only in the slow run.
@pytest.mark.parametrize("path_taken", ["warm", pytest.param("cold", marks=pytest.mark.slow)], indirect=True)
def test_cpu_limit_stops_a_loop_at_its_line(tmp_path: Path, path_taken: str) -> None:
    program = card(tmp_path, "```python\nprint('before')\nwhile True:\n    pass\n```\n")
    report = run_programs([program], workers=1, cpu_limit=1, wall_limit=120)  # however busy the machine is
    [problem] = report.problems
    assert problem.location.line in (BODY_LINE + 2, BODY_LINE + 3)  # the loop's test or its body
    assert problem.message == "card code used more than 1 s of CPU time"
    assert problem.hint is not None and "fewer epochs" in problem.hint
    assert report.blocks_run == 1


def test_wall_clock_backstop_catches_code_that_waits(tmp_path: Path, path_taken: str) -> None:
    program = card(tmp_path, "```python\nimport time\ntime.sleep(60)\n```\n")
    started = time.monotonic()
    report = run_programs([program], workers=1, cpu_limit=30, wall_limit=1)
    assert time.monotonic() - started < 20
    [problem] = report.problems
    assert problem.format().startswith(
        f"{program.path}:{BODY_LINE}:1: error: card code did not finish within 1 s of wall-clock time"
    )
    assert report.blocks_run == 0 and report.blocks_not_run == 1


def test_a_hard_crash_names_the_card_line(tmp_path: Path, path_taken: str) -> None:
    program = card(
        tmp_path,
        """
        ```python
        print("fine")
        ```

        ```python
        import os, signal
        os.kill(os.getpid(), signal.SIGSEGV)
        ```
        """,
    )
    report = run_programs([program], workers=1)
    assert messages(report)[0].startswith(f"{program.path}:{BODY_LINE + 6}:1: error: card code crashed (SIGSEGV)")
    assert (report.programs, report.blocks_run, report.blocks_not_run) == (1, 1, 1)


def test_a_killed_card_is_reported(tmp_path: Path, path_taken: str) -> None:
    program = card(tmp_path, "```python\nimport os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n```\n")
    report = run_programs([program], workers=1)
    [problem] = report.problems
    assert (problem.location.path, problem.location.line) == (program.path, BODY_LINE)
    assert problem.message == "card code was killed (SIGKILL)"
    assert problem.hint is not None and problem.hint.startswith("it may have run out of memory")


def test_ending_the_process_early_is_reported(tmp_path: Path, path_taken: str) -> None:
    program = card(tmp_path, "```python\nimport os\nos._exit(0)\n```\n")
    report = run_programs([program], workers=1)
    assert messages(report)[0].startswith(
        f"{program.path}:{BODY_LINE}:1: error: card code ended its process before all its blocks had run"
    )
    assert report.blocks_run == 0


def test_a_dead_warm_interpreter_fails_its_card_and_is_replaced(tmp_path: Path) -> None:
    # Card code cannot see the warm interpreter from its sandbox, so the test kills it while the card runs.
    started = tmp_path / "started"
    killer = card(
        tmp_path,
        f"""
        ```python
        import os, time
        open({str(started)!r}, "w").write(os.getcwd())
        time.sleep(60)
        ```
        """,
        "killer",
    )
    after = card(tmp_path, "```python\nprint('still runs')\n```\n\n```output\nstill runs\n```\n", "after")
    before = children()
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(run_programs, [killer, after], workers=1)
        deadline = time.monotonic() + 120
        while not started.is_file() or not started.read_text():
            assert time.monotonic() < deadline and not running.done(), "the card never started"
            time.sleep(0.05)
        card_processes = processes_in(started.read_text())
        [server] = [pid for pid in children() - before if b"--serve" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        os.kill(int(server), signal.SIGKILL)
        report = running.result(timeout=120)
    assert messages(report) == [
        f"{killer.path}:{BODY_LINE}:1: error: card code did not finish: the interpreter running it exited\n"
        "  hint: it was killed by SIGKILL; it may have run out of memory: try again with fewer jobs (--jobs 1)"
    ]
    assert (report.programs, report.blocks_run, report.outputs_checked) == (1, 1, 1)
    assert card_processes, "the card's processes were not found"
    for pid in card_processes:
        assert wait_until_gone(pid), f"the card's process {pid} was left running"


def processes_in(folder: str) -> list[int]:
    """The processes whose working directory is this folder (a card's processes: all run in its folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "cwd") == folder:
                    found.append(int(entry.name))
    return found


def wait_until_gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def dead_prelude(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace the prelude by one that dies at once, as it does when an import fails."""
    script = tmp_path / "dead_prelude.py"
    script.write_text("import sys\nsys.exit(\"ModuleNotFoundError: No module named 'keras'\")\n")
    monkeypatch.setattr(runcode, "PRELUDE", script)


def test_an_interpreter_that_cannot_start_leaves_every_card_reported_as_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    programs = [card(tmp_path, "```python\nprint(1)\n```\n", f"c{i}") for i in range(3)]
    dead_prelude(tmp_path, monkeypatch)
    report = run_programs(programs, workers=2)
    assert len(report.problems) == 3
    for program, problem in zip(programs, report.problems, strict=True):
        assert problem.format().startswith(
            f"{program.path}:{BODY_LINE}:1: error: card code not run: the interpreter that runs card code could not "
            "start\n  hint: it exited with status 1: ModuleNotFoundError: No module named 'keras'"
        )
    assert (report.programs, report.blocks_run, report.outputs_checked, report.blocks_not_run) == (0, 0, 0, 3)


def test_check_command_reports_a_dead_interpreter(
    content: Path, write_card: WriteCard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    front_matter = "id: alpha-one\ntags: [code]\nsource: [alpha]"
    path = write_card("alpha", "one", front_matter, "# Q?\n\n```python\nprint(1)\n```\n")
    dead_prelude(tmp_path, monkeypatch)
    result = CliRunner().invoke(main, ["check", "--content", str(content), "--run-code"])
    assert result.exit_code == 1
    assert f"{path}:8:1: error: card code not run: the interpreter that runs card code could not start" in (
        result.stderr
    )
    assert "code: 0 blocks run in 0 cards" in result.stdout


def test_missing_verify_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runcode, "VERIFY_MODULES", ("json", "no_such_module_for_cards"))
    assert missing_verify_extra() == (
        "running card code needs the 'verify' extra, but no_such_module_for_cards cannot be imported\n"
        "  hint: install it with pip install -e '.[verify]'"
    )
    monkeypatch.setattr(runcode, "VERIFY_MODULES", ("json",))
    assert missing_verify_extra() is None


def children() -> set[str]:
    """The process ids of this process's children (Linux only)."""
    tasks = Path(f"/proc/{os.getpid()}/task")
    if not tasks.is_dir():
        pytest.skip("needs Linux's /proc")
    return {pid for task in tasks.iterdir() for pid in (task / "children").read_text().split()}


def test_no_process_is_left_behind(tmp_path: Path) -> None:
    programs = [card(tmp_path, "```python\nprint(1)\n```\n", f"c{i}") for i in range(3)]
    before = children()
    run_programs(programs, workers=2)
    assert children() <= before


def test_exempt_blocks_keep_their_reason_and_do_not_run(tmp_path: Path) -> None:
    program = card(tmp_path, "```python no-run: TensorFlow 1 only\nsess = tf.Session()\n```\n")
    [block] = program.blocks
    assert block.no_run == "TensorFlow 1 only"
    assert program.runnable == ()
    report = run_programs([program])
    assert (report.programs, report.blocks_run, report.blocks_exempt, report.problems) == (0, 0, 1, ())


# --- the sandbox ----------------------------------------------------------------------------------


def require_sandbox() -> None:
    """Skip (fail under CI) where the system offers no sandbox for card code."""
    if (problem := runcode.sandbox_problem()) is not None:
        skip_or_fail(f"needs Linux user namespaces for the card-code sandbox: {problem}")


def test_card_code_cannot_connect_even_below_the_socket_module(tmp_path: Path, path_taken: str) -> None:
    require_sandbox()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        # `_socket` is the C module under `socket`: the Python-level patch does not reach it.
        program = card(
            tmp_path,
            f"""
            ```python
            import _socket
            client = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
            client.settimeout(5)
            try:
                client.connect(("127.0.0.1", {port}))
                print("connected")
            except OSError:
                print("no connection")
            ```

            ```output
            no connection
            ```
            """,
        )
        report = run_programs([program], workers=1)
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever reached the listener
    assert messages(report) == []
    assert report.outputs_checked == 1 and report.no_sandbox is None


def test_card_code_sees_no_secret_in_its_environment_or_any_other_process(
    tmp_path: Path, path_taken: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_sandbox()
    monkeypatch.setenv("DECKS_TEST_TOKEN", "planted-secret-8c1f")
    seen = tmp_path / "seen.json"
    program = card(
        tmp_path,
        f"""
        ```python
        import glob, json, os
        leaks = []
        for path in glob.glob("/proc/[0-9]*/environ"):  # the build's own environment, among others
            try:
                if b"planted-secret" in open(path, "rb").read():
                    leaks.append(path)
            except OSError:
                pass
        json.dump({{"names": sorted(os.environ), "leaks": leaks}}, open({str(seen)!r}, "w"))
        ```
        """,
    )
    report = run_programs([program], workers=1)
    assert messages(report) == []
    found = json.loads(seen.read_text())
    assert "DECKS_TEST_TOKEN" not in found["names"]
    expected = {"PATH", "LANG", "HOME", "KERAS_BACKEND", "KERAS_HOME", *runcode.CARD_ENVIRONMENT}
    assert set(found["names"]) - {"LC_CTYPE"} == expected  # Python may add LC_CTYPE for a UTF-8 locale
    assert found["leaks"] == []


def test_each_card_gets_a_fresh_empty_home(tmp_path: Path, path_taken: str) -> None:
    seen = tmp_path / "homes"
    seen.mkdir()
    body = f"""
        ```python
        import json, os, pathlib
        home = os.environ["HOME"]
        listing = os.listdir(home)
        pathlib.Path(home, ".written-by-the-card").write_text("left behind")
        json.dump({{"home": home, "listing": listing, "user": os.path.expanduser("~")}},
                  open(os.path.join({str(seen)!r}, os.urandom(8).hex()), "w"))
        ```
        """
    programs = [card(tmp_path, body, f"c{i}") for i in range(2)]
    report = run_programs(programs, workers=1)
    assert messages(report) == []
    homes = [json.loads(path.read_text()) for path in seen.iterdir()]
    assert len(homes) == 2 and homes[0]["home"] != homes[1]["home"]
    for found in homes:
        assert found["listing"] == [] and found["user"] == found["home"]
        assert found["home"] != os.path.expanduser("~")
        assert Path(found["home"]).is_relative_to(tempfile.gettempdir())
        assert not Path(found["home"]).exists()  # thrown away with the card's folder


def test_under_ci_no_card_code_runs_without_a_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "ran"
    programs = [card(tmp_path, f"```python\nopen({str(marker)!r}, 'w')\n```\n", f"c{i}") for i in range(2)]
    monkeypatch.setattr(runcode, "sandbox_problem", lambda: "unshare: Operation not permitted")
    monkeypatch.setenv("CI", "1")
    report = run_programs(programs, workers=1)
    assert messages(report) == [
        f"{program.path}:{BODY_LINE}:1: error: card code not run: no sandbox for card code on this system "
        "(unshare: Operation not permitted)\n"
        "  hint: under CI card code runs only in a sandbox (new user, network, PID and mount namespaces): "
        "allow unprivileged user namespaces on the runner"
        for program in programs
    ]
    assert not marker.exists()
    assert report.summary() == (
        "code: 0 blocks run in 0 cards, 0 exempt, 0 outputs checked, 2 failures, 2 not run; "
        "no sandbox: unshare: Operation not permitted"
    )


def test_outside_ci_the_report_says_card_code_ran_without_a_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = card(tmp_path, "```python\nprint('ran')\n```\n\n```output\nran\n```\n")
    monkeypatch.setattr(runcode, "sandbox_problem", lambda: "namespaces are Linux only (this is darwin)")
    monkeypatch.delenv("CI", raising=False)
    report = run_programs([program], workers=1)
    assert messages(report) == []
    assert report.summary() == (
        "code: 1 blocks run in 1 cards, 0 exempt, 1 outputs checked, 0 failures; "
        "no sandbox: namespaces are Linux only (this is darwin)"
    )


def test_a_required_sandbox_that_cannot_be_entered_runs_no_card_code(tmp_path: Path) -> None:
    # A second thread makes unshare(CLONE_NEWUSER) fail, as a system without user namespaces would.
    require_sandbox()
    marker = tmp_path / "ran"
    request = tmp_path / "request.json"
    (tmp_path / "home").mkdir()
    request.write_text(
        json.dumps(
            {
                "path": str(tmp_path / "card.md"),
                "blocks": [{"code": f"open({str(marker)!r}, 'w')", "line": 1}],
                "result": str(tmp_path / "result.json"),
                "cpu_limit": 30,
                "keras": False,
                "home": str(tmp_path / "home"),
                "sandbox": True,
            }
        )
    )
    threaded = (
        "import runpy, sys, threading, time\n"
        "threading.Thread(target=time.sleep, args=(5,), daemon=True).start()\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", threaded, str(code_prelude.__file__), str(request)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines()[-1] == (
        "card code not run: the sandbox could not be set up (unshare: Invalid argument)"
    )
    assert not marker.exists()
    assert json.loads((tmp_path / "result.json").read_text()) == []
