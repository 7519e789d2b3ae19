"""Run the Python examples on the cards and compare what they print with the card.

Each card's `python` blocks run in order in one fresh interpreter, with fixed
seeds, a CPU-time limit and no network. Card code is content from a pull
request, so it runs in a sandbox where Linux offers one: new user, network, PID
and mount namespaces (no connection leaves, no other process is visible), an
environment holding only what the backends need (no tokens), and an empty
throw-away HOME. Where there is no sandbox the run report says so, and under CI
no card code runs at all. A hidden prelude only replaces data
sources (dataset downloads, pre-trained weights): the code a reader sees is
what runs. Whatever stops a card (an exception, a crash, the CPU limit, a lost
interpreter) is reported at the card's line, and the counts say what really ran.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import queue
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from generator.cards.model import Card
from generator.cards.scan import (
    OUTPUT_LANGUAGE,
    RUNNABLE_LANGUAGE,
    Fence,
    fence_language,
    parse_fence_info,
    without_blank_prose,
)
from generator.diagnostics import Diagnostic, Location, error

# CPU-seconds per card, counted in the card's own process: a busy machine does
# not use them up. The heaviest cards need well under a minute.
DEFAULT_CPU_LIMIT = 300
# The wall-clock backstop, for code that waits instead of computing: this many
# times the CPU limit, so only a hang (never a slow machine) reaches it.
WALL_CLOCK_FACTOR = 4
STARTUP_TIMEOUT = 600  # seconds for a warm interpreter to import Keras, even on a loaded machine
PRELUDE = Path(__file__).with_name("child.py")
SANDBOX_PROBE = PRELUDE  # kept apart from PRELUDE, which tests replace
# The whole environment of card code; PATH and LANG are taken from ours, HOME is a fresh folder.
PASSED_ON = ("PATH", "LANG")
CARD_ENVIRONMENT = {
    "PYTHONHASHSEED": "0",
    "JAX_PLATFORMS": "cpu",
    "CUDA_VISIBLE_DEVICES": "",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "MPLBACKEND": "Agg",
    "OMP_NUM_THREADS": "1",
}
NO_SANDBOX_IN_CI_HINT = (
    "under CI card code runs only in a sandbox (new user, network, PID and mount namespaces): "
    "allow unprivileged user namespaces on the runner"
)
VERIFY_MODULES = ("keras", "jax", "tensorflow")
VERIFY_INSTALL = "pip install -e '.[verify]'"
# Import errors for these mean the `verify` extra is missing, not that the card is wrong.
_VERIFY_PACKAGES = frozenset({*VERIFY_MODULES, "jaxlib", "numpy", "tf_keras"})
_STDERR_FILE = "stderr.txt"
_CARD_FRAME = re.compile(r'File "(?P<path>[^"]+)", line (?P<line>\d+)')


@dataclass(frozen=True, slots=True)
class CodeBlock:
    """One `python` block of a card, with the output the card says it prints."""

    code: str
    location: Location  # the fence line
    expected_output: str | None
    output_location: Location | None
    no_run: str | None


@dataclass(frozen=True, slots=True)
class Program:
    """All python blocks of one card, run together in one process."""

    card_id: str
    path: Path
    blocks: tuple[CodeBlock, ...]

    @property
    def runnable(self) -> tuple[CodeBlock, ...]:
        return tuple(b for b in self.blocks if b.no_run is None)

    @property
    def backend(self) -> str:
        """TensorFlow for cards that show TensorFlow APIs, JAX (the lighter one) otherwise."""
        uses_tf = any("import tensorflow" in b.code or "from tensorflow" in b.code for b in self.runnable)
        return "tensorflow" if uses_tf else "jax"

    @property
    def uses_keras(self) -> bool:
        """Whether the prelude must seed Keras and replace its downloads (importing it costs seconds)."""
        return any(name in b.code for b in self.runnable for name in ("keras", "tensorflow", "jax"))


@dataclass(frozen=True, slots=True)
class RunReport:
    """What running the programs found; every count is of what actually ran."""

    programs: int  # cards of which at least one block ran
    blocks_run: int  # blocks that started (a block that raised counts, and is a failure)
    blocks_exempt: int  # blocks marked `no-run`
    outputs_checked: int  # output blocks compared with what their block printed
    problems: tuple[Diagnostic, ...]
    blocks_not_run: int = 0  # runnable blocks that never started (an earlier block failed, or the card could not run)
    no_sandbox: str | None = None  # why card code ran (or, under CI, did not run) without a sandbox

    def summary(self) -> str:
        """One line for the end of a run, e.g. 'code: 2 blocks run in 1 cards, 0 exempt, ...'."""
        text = (
            f"code: {self.blocks_run} blocks run in {self.programs} cards, {self.blocks_exempt} exempt, "
            f"{self.outputs_checked} outputs checked, {len(self.problems)} failures"
        )
        text += f", {self.blocks_not_run} not run" if self.blocks_not_run else ""
        return text + (f"; no sandbox: {self.no_sandbox}" if self.no_sandbox else "")


@functools.cache
def sandbox_problem() -> str | None:
    """Why card code cannot run in a sandbox on this system, or None when it can (asked once per process).

    The probe is the prelude's own `isolate`, run in a throw-away process: what
    it reports is what each card gets.
    """
    with tempfile.TemporaryDirectory(prefix="card-sandbox-") as scratch:
        try:
            probe = subprocess.run(
                [sys.executable, str(SANDBOX_PROBE), "--probe"],
                cwd=scratch,
                env=_environment("jax", Path(scratch), Path(scratch)),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return f"the sandbox probe failed: {exc}"
    answer = probe.stdout.strip()
    if answer == "ok" and probe.returncode == 0:
        return None
    return answer or _last_words(probe.stderr) or f"the sandbox probe exited with status {probe.returncode}"


def missing_verify_extra() -> str | None:
    """Why card code cannot run in this environment (the `verify` extra is missing), or None if it can."""
    missing = [name for name in VERIFY_MODULES if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return (
        f"running card code needs the 'verify' extra, but {', '.join(missing)} cannot be imported\n"
        f"  hint: install it with {VERIFY_INSTALL}"
    )


def extract_program(card: Card) -> Program:
    """Collect the card's python blocks, each with the `output` block that follows it."""
    blocks: list[CodeBlock] = []
    for segments in card.segments():
        significant = without_blank_prose(segments)
        for index, segment in enumerate(significant):
            if not isinstance(segment, Fence) or fence_language(segment) != RUNNABLE_LANGUAGE:
                continue
            info, _ = parse_fence_info(segment.info)
            following = significant[index + 1] if index + 1 < len(significant) else None
            expected = None
            output_location = None
            if isinstance(following, Fence) and fence_language(following) == OUTPUT_LANGUAGE:
                expected, output_location = following.code, following.location
            no_run = info.no_run if info else None
            blocks.append(CodeBlock(segment.code, segment.location, expected, output_location, no_run))
    return Program(card.id, card.path, tuple(blocks))


@dataclass(frozen=True, slots=True)
class _Limits:
    cpu: float
    wall: float
    sandbox: bool = False  # whether each card must run in the sandbox (the probe found it available)


@dataclass(frozen=True, slots=True)
class _Ending:
    """How the process that ran a card ended."""

    kind: Literal["exited", "killed", "wall-clock", "interpreter-lost", "no-interpreter"]
    code: int = 0  # the exit status, or the signal for "killed"
    cpu_seconds: float | None = None  # known for cards run by a warm interpreter
    reason: str = ""  # for interpreter problems: its last words


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One card's result: its diagnostics and how far it got."""

    problems: list[Diagnostic]
    blocks_run: int
    outputs_checked: int


# How a program is started: (program, request file, working dir, limits) -> how it ended.
_Launcher = Callable[[Path, Path, _Limits], _Ending]


def run_programs(
    programs: list[Program],
    *,
    workers: int = 2,
    cpu_limit: float = DEFAULT_CPU_LIMIT,
    wall_limit: float | None = None,
    progress: Callable[[Program], None] | None = None,
) -> RunReport:
    """Run every program (in parallel processes) and report failures and output mismatches.

    `cpu_limit` is CPU-seconds per card; `wall_limit` (default: WALL_CLOCK_FACTOR
    times the CPU limit) only catches code that hangs. `progress` is called (from a
    worker thread) after each program has run.
    """
    to_run = [p for p in programs if p.runnable]
    no_sandbox = sandbox_problem() if to_run else None
    if no_sandbox is not None and os.environ.get("CI"):
        return _refused_without_sandbox(programs, to_run, no_sandbox)
    wall = wall_limit if wall_limit is not None else WALL_CLOCK_FACTOR * cpu_limit
    limits = _Limits(cpu_limit, wall, sandbox=no_sandbox is None)
    warm_programs = [p for p in to_run if p.backend == "jax"]
    preload = ["numpy", "keras"] if any(p.uses_keras for p in warm_programs) else ["numpy"]
    with tempfile.TemporaryDirectory(prefix="card-code-") as scratch:
        keras_home = Path(scratch) / "keras-home"
        home = Path(scratch) / "home"  # the warm interpreters'; each card gets its own below
        home.mkdir()
        warm = queue.Queue[_WarmInterpreter]()
        for _ in range(min(max(1, workers), len(warm_programs))):
            warm.put(_WarmInterpreter(_environment("jax", keras_home, home), Path(scratch), preload))

        def run(program: Program) -> _Outcome:
            outcome = run_quietly(program)
            if progress is not None:
                progress(program)
            return outcome

        def run_quietly(program: Program) -> _Outcome:
            if program.backend != "jax":  # TensorFlow is not fork-safe once imported: start it cold
                return _run_one(program, limits, lambda request, work, lim: _run_cold(program, request, work, lim))
            interpreter = warm.get()
            try:
                return _run_one(program, limits, interpreter.run)
            finally:
                warm.put(interpreter)

        try:
            with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
                outcomes = list(pool.map(run, to_run))
        finally:
            while not warm.empty():
                warm.get().close()
    runnable = sum(len(p.runnable) for p in to_run)
    blocks_run = sum(o.blocks_run for o in outcomes)
    return RunReport(
        programs=sum(1 for o in outcomes if o.blocks_run),
        blocks_run=blocks_run,
        blocks_exempt=sum(1 for p in programs for b in p.blocks if b.no_run is not None),
        outputs_checked=sum(o.outputs_checked for o in outcomes),
        problems=tuple(d for o in outcomes for d in o.problems),
        blocks_not_run=runnable - blocks_run,
        no_sandbox=no_sandbox,
    )


def _refused_without_sandbox(programs: list[Program], to_run: list[Program], reason: str) -> RunReport:
    """Under CI card code never runs unsandboxed: every card with code is an error, and nothing runs."""
    problems = tuple(
        error(
            program.runnable[0].location,
            f"card code not run: no sandbox for card code on this system ({reason})",
            NO_SANDBOX_IN_CI_HINT,
        )
        for program in to_run
    )
    return RunReport(
        programs=0,
        blocks_run=0,
        blocks_exempt=sum(1 for p in programs for b in p.blocks if b.no_run is not None),
        outputs_checked=0,
        problems=problems,
        blocks_not_run=sum(len(p.runnable) for p in to_run),
        no_sandbox=reason,
    )


def _run_one(program: Program, limits: _Limits, launch: _Launcher) -> _Outcome:
    blocks = program.runnable
    with tempfile.TemporaryDirectory(prefix="card-") as scratch:
        work = Path(scratch)
        request = work / "request.json"
        result_file = work / "result.json"
        home = work / "home"
        home.mkdir()
        request.write_text(
            json.dumps(
                {
                    "path": str(program.path),
                    "blocks": [{"code": b.code, "line": b.location.line + 1} for b in blocks],
                    "result": str(result_file),
                    "cpu_limit": limits.cpu,
                    "keras": program.uses_keras,
                    "home": str(home),
                    "sandbox": limits.sandbox,
                }
            )
        )
        ending = launch(request, work, limits)
        # The prelude rewrites the file after every block: it lists exactly the blocks that ran.
        results: list[dict[str, Any]] = json.loads(result_file.read_text()) if result_file.is_file() else []
        stderr_file = work / _STDERR_FILE
        stderr = stderr_file.read_text(errors="replace") if stderr_file.is_file() else ""
    problems, outputs_checked = _compare(blocks, results)
    if len(results) < len(blocks) and not any(r.get("error") for r in results):
        problems.append(_why_stopped(program, blocks[len(results)], ending, limits, stderr))
    return _Outcome(problems, len(results), outputs_checked)


def _why_stopped(program: Program, block: CodeBlock, ending: _Ending, limits: _Limits, stderr: str) -> Diagnostic:
    """The diagnostic for a card whose process ended before all its blocks had run."""
    words = _last_words(stderr)
    if ending.kind == "no-interpreter":
        return error(
            block.location,
            "card code not run: the interpreter that runs card code could not start",
            ending.reason,
        )
    if ending.kind == "interpreter-lost":
        return error(
            block.location,
            "card code did not finish: the interpreter running it exited",
            f"{ending.reason}; it may have run out of memory: try again with fewer jobs (--jobs 1)",
        )
    if ending.kind == "wall-clock":
        used = f"it used {ending.cpu_seconds:.0f} s of CPU time" if ending.cpu_seconds is not None else "it"
        return error(
            block.location,
            f"card code did not finish within {limits.wall:g} s of wall-clock time",
            f"{used} (the limit is {limits.cpu:g} CPU-seconds): code that waits (input, sleep, a lock) never ends here",
        )
    location = _crash_location(program, block, stderr)
    if ending.kind == "killed":
        over_cpu = ending.code == signal.SIGXCPU or (
            ending.code == signal.SIGKILL and ending.cpu_seconds is not None and ending.cpu_seconds >= limits.cpu
        )
        if over_cpu:
            return error(location, f"card code used more than {limits.cpu:g} s of CPU time", _CPU_HINT)
        if ending.code == signal.SIGKILL:
            hint = "it may have run out of memory"
            if ending.cpu_seconds is None:  # a cold run: the hard CPU limit also ends in SIGKILL
                hint += f", or used more than {limits.cpu:g} s of CPU time"
            return error(location, "card code was killed (SIGKILL)", hint)
        return error(location, f"card code crashed ({signal.Signals(ending.code).name})", words or "it printed nothing")
    if ending.code != 0:
        return error(location, f"card code crashed: {words or f'exit status {ending.code}'}")
    return error(location, "card code ended its process before all its blocks had run", "remove the call to os._exit")


_CPU_HINT = "use less data, fewer epochs or a smaller model (the limit is CPU time: a busy machine does not count)"


def _crash_location(program: Program, block: CodeBlock, stderr: str) -> Location:
    """The card line a crash report names (faulthandler lists the innermost frame first), else the block."""
    for match in _CARD_FRAME.finditer(stderr):
        if match["path"] == str(program.path):
            return Location(block.location.path, int(match["line"]), 1)
    return block.location


def _last_words(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith("Fatal Python error")]
    return (fatal or lines or [""])[-1]


def _compare(blocks: tuple[CodeBlock, ...], results: list[dict[str, Any]]) -> tuple[list[Diagnostic], int]:
    """Diagnostics for the blocks that ran, and how many output blocks were compared."""
    problems = []
    checked = 0
    for block, result in zip(blocks, results, strict=False):
        if result.get("error"):
            problems.append(_raised(block, result))
            break  # later blocks did not run
        if block.expected_output is None:
            continue
        checked += 1
        actual = normalise_output(str(result.get("stdout", "")))
        expected = normalise_output(block.expected_output)
        if actual != expected:
            problems.append(
                error(
                    block.output_location or block.location,
                    "printed output differs from the card's output block",
                    f"expected:\n{_indent(expected)}\n  actual:\n{_indent(actual)}",
                )
            )
    return problems, checked


def _raised(block: CodeBlock, result: dict[str, Any]) -> Diagnostic:
    line = result.get("line")
    location = Location(block.location.path, int(line), 1) if line else block.location
    if result.get("kind") == "cpu":
        return error(location, f"card code {str(result['error']).partition(': ')[2]}", _CPU_HINT)
    hint = "fix the code, or mark the fence 'no-run: <why>'"
    if result.get("kind") == "import":
        module = str(result.get("module") or "").partition(".")[0]
        if module in _VERIFY_PACKAGES:
            hint = f"install the 'verify' extra: {VERIFY_INSTALL}"
        else:
            hint = "the 'verify' extra does not install it: change the import, or mark the fence 'no-run: <why>'"
    return error(location, f"code raised {result['error']}", hint)


def normalise_output(text: str) -> str:
    """Ignore trailing spaces and blank lines at the end."""
    return "\n".join(line.rstrip() for line in text.strip("\n").split("\n")).rstrip()


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.split("\n")) if text else "    (nothing)"


def _environment(backend: str, keras_home: Path, home: Path) -> dict[str, str]:
    """Card code's whole environment: built from nothing, so no token or credential of ours reaches it."""
    passed_on = {name: os.environ[name] for name in PASSED_ON if name in os.environ}
    return {
        "PATH": os.defpath,
        "LANG": "C.UTF-8",
        **passed_on,
        **CARD_ENVIRONMENT,
        "HOME": str(home),
        "KERAS_BACKEND": backend,
        "KERAS_HOME": str(keras_home),
    }


def _run_cold(program: Program, request: Path, work: Path, limits: _Limits) -> _Ending:
    """Start a new interpreter for the program."""
    with (work / _STDERR_FILE).open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(PRELUDE), str(request)],
            cwd=work,
            env=_environment(program.backend, work / "keras-home", work / "home"),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
        )
        try:
            code = process.wait(timeout=limits.wall)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return _Ending("wall-clock")
    return _Ending("killed", -code) if code < 0 else _Ending("exited", code)


class _LineReader:
    """Reads lines from a pipe with a deadline (no hidden buffer between `select` and the read)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._fd = stream.fileno()
        self._buffer = b""

    def read_line(self, timeout: float) -> str | None:
        """The next line; None at end of file; TimeoutError when none comes in time."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._fd], [], [], remaining)[0]:
                raise TimeoutError
            chunk = os.read(self._fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()


class _WarmInterpreter:
    """An interpreter that has imported Keras (JAX) once and forks a fresh child per card.

    Importing Keras and JAX costs about two CPU-seconds; paying it once per
    worker instead of once per card keeps the test run short. The child is a
    new process: nothing from one card's run is visible in the next. If the
    interpreter dies, the card it was running is reported and a new one is
    started for the next card; if a new one cannot start, the cards are
    reported as not run.
    """

    def __init__(self, env: dict[str, str], scratch: Path, preload: list[str]) -> None:
        self._env = env
        self._scratch = scratch
        self._preload = preload
        self._failed: str | None = None  # why it could not start: then no card runs here
        self._start()

    def _start(self) -> None:
        self._log = tempfile.NamedTemporaryFile(prefix="warm-", suffix=".log", dir=self._scratch, delete=False)
        self._process = subprocess.Popen(
            [sys.executable, str(PRELUDE), "--serve", *self._preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=self._env,
            bufsize=0,
        )
        assert self._process.stdout is not None
        self._reader = _LineReader(self._process.stdout)
        self._ready = False

    def run(self, request: Path, work: Path, limits: _Limits) -> _Ending:
        if self._failed is not None:
            return _Ending("no-interpreter", reason=self._failed)
        if self._ready and self._process.poll() is not None:  # died between cards
            self._stop()
            self._start()
        if not self._ready:
            try:
                ready = self._reader.read_line(STARTUP_TIMEOUT)
            except TimeoutError:
                ready = None
            if ready is None:
                self._failed = self._obituary(f"it did not start within {STARTUP_TIMEOUT} s")
                self._stop()
                return _Ending("no-interpreter", reason=self._failed)
            self._ready = True
        pid: int | None = None
        try:
            assert self._process.stdin is not None
            self._process.stdin.write((json.dumps({"request": str(request), "cwd": str(work)}) + "\n").encode())
            started = self._reader.read_line(60)
            if started is None:
                return self._lost(pid)
            pid = int(json.loads(started)["pid"])
            try:
                reply = self._reader.read_line(limits.wall)
            except TimeoutError:
                _kill(pid)
                reply = self._reader.read_line(60)
                if reply is None:
                    return self._lost(pid)
                return _Ending("wall-clock", cpu_seconds=float(json.loads(reply)["cpu"]))
        except (OSError, TimeoutError):  # a broken pipe, or a server that stopped answering
            return self._lost(pid)
        if reply is None:
            return self._lost(pid)
        finished = json.loads(reply)
        status, cpu = int(finished["status"]), float(finished["cpu"])
        if os.WIFSIGNALED(status):
            return _Ending("killed", os.WTERMSIG(status), cpu)
        return _Ending("exited", os.WEXITSTATUS(status), cpu)

    def close(self) -> None:
        self._stop()

    def _lost(self, pid: int | None) -> _Ending:
        """The interpreter died while running a card: report it, and start a new one for the next card."""
        if pid is not None:
            _kill(pid)  # the card's process outlives its parent: end it
        reason = self._obituary("it stopped answering")
        self._stop()
        self._start()
        return _Ending("interpreter-lost", reason=reason)

    def _obituary(self, fallback: str) -> str:
        """What the interpreter last wrote, and how it ended."""
        try:
            code = self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        self._log.flush()
        words = _last_words(Path(self._log.name).read_text(errors="replace"))
        if code is None:
            ended = fallback
        elif code < 0:
            ended = f"it was killed by {signal.Signals(-code).name}"
        else:
            ended = f"it exited with status {code}"
        return f"{ended}: {words}" if words else ended

    def _stop(self) -> None:
        process = self._process
        if process.stdin is not None:
            try:
                process.stdin.close()
            except OSError:
                pass  # already dead: the pipe is closed all the same
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        self._log.close()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
