"""Run the Python examples on the cards and compare what they print with the card.

Each card's `python` blocks run in order in one fresh interpreter, with fixed
seeds, a timeout and no network. A hidden prelude only replaces data sources
(dataset downloads, pre-trained weights): the code a reader sees is what runs.
"""

from __future__ import annotations

import json
import os
import queue
import select
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from generator.diagnostics import Diagnostic, Location, error
from generator.model import Card
from generator.scan import (
    OUTPUT_LANGUAGE,
    RUNNABLE_LANGUAGE,
    Fence,
    fence_language,
    parse_fence_info,
    scan,
    without_blank_prose,
)

DEFAULT_TIMEOUT = 240
PRELUDE = Path(__file__).with_name("code_prelude.py")


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


@dataclass(frozen=True, slots=True)
class RunReport:
    """What running the programs found."""

    programs: int
    blocks_run: int
    blocks_exempt: int
    outputs_checked: int
    problems: tuple[Diagnostic, ...]


def extract_program(card: Card) -> Program:
    """Collect the card's python blocks, each with the `output` block that follows it."""
    blocks: list[CodeBlock] = []
    for text, line in ((card.front, card.front_line), (card.back, card.back_line)):
        segments, _ = scan(text, card.path, line)
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
            blocks.append(CodeBlock(segment.code, segment.location, expected, output_location, info.no_run))
    return Program(card.id, card.path, tuple(blocks))


def run_programs(programs: list[Program], *, workers: int = 2, timeout: int = DEFAULT_TIMEOUT) -> RunReport:
    """Run every program (in parallel processes) and report failures and output mismatches."""
    to_run = [p for p in programs if p.runnable]
    with tempfile.TemporaryDirectory(prefix="card-code-") as scratch:
        keras_home = Path(scratch) / "keras-home"
        warm = queue.Queue[_WarmInterpreter]()
        for _ in range(min(max(1, workers), sum(p.backend == "jax" for p in to_run))):
            warm.put(_WarmInterpreter(_environment("jax", keras_home), Path(scratch)))

        def run(program: Program) -> list[Diagnostic]:
            if program.backend != "jax":  # TensorFlow is not fork-safe once imported: start it cold
                return _run_one(program, timeout, lambda request, work: _run_cold(program, request, work, timeout))
            interpreter = warm.get()
            try:
                return _run_one(program, timeout, lambda request, work: interpreter.run(request, work, timeout))
            finally:
                warm.put(interpreter)

        try:
            with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
                results = list(pool.map(run, to_run))
        finally:
            while not warm.empty():
                warm.get().close()
    problems = tuple(d for found in results for d in found)
    blocks = [b for p in programs for b in p.blocks]
    return RunReport(
        programs=len(to_run),
        blocks_run=sum(1 for b in blocks if b.no_run is None),
        blocks_exempt=sum(1 for b in blocks if b.no_run is not None),
        outputs_checked=sum(1 for b in blocks if b.no_run is None and b.expected_output is not None),
        problems=problems,
    )


# How a program is started: (request file, working dir) -> (finished in time, last stderr line).
Launcher = Callable[[Path, Path], tuple[bool, str]]


def _run_one(program: Program, timeout: int, launch: Launcher) -> list[Diagnostic]:
    blocks = program.runnable
    with tempfile.TemporaryDirectory(prefix="card-") as work:
        request = Path(work) / "request.json"
        result_file = Path(work) / "result.json"
        request.write_text(
            json.dumps(
                {
                    "path": str(program.path),
                    "blocks": [{"code": b.code, "line": b.location.line + 1} for b in blocks],
                    "result": str(result_file),
                }
            )
        )
        finished, last_error = launch(request, Path(work))
        if not finished:
            return [error(blocks[0].location, f"card code did not finish within {timeout} s", "use less data/epochs")]
        if not result_file.is_file():
            return [error(blocks[0].location, f"card code crashed: {last_error or 'no output'}")]
        results = json.loads(result_file.read_text())
    return _compare(blocks, results)


def _environment(backend: str, keras_home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "KERAS_BACKEND": backend,
        "KERAS_HOME": str(keras_home),
        "PYTHONHASHSEED": "0",
        "JAX_PLATFORMS": "cpu",
        "CUDA_VISIBLE_DEVICES": "",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
    }


def _run_cold(program: Program, request: Path, work: Path, timeout: int) -> tuple[bool, str]:
    """Start a new interpreter for the program."""
    try:
        completed = subprocess.run(
            [sys.executable, str(PRELUDE), str(request)],
            cwd=work,
            env=_environment(program.backend, work / "keras-home"),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, ""
    return True, (completed.stderr.strip().splitlines() or [""])[-1]


class _WarmInterpreter:
    """An interpreter that has imported Keras (JAX) once and forks a fresh child per card.

    Importing Keras and JAX costs about two CPU-seconds; paying it once per
    worker instead of once per card keeps the test run short. The child is a
    new process: nothing from one card's run is visible in the next.
    """

    def __init__(self, env: dict[str, str], scratch: Path) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="warm-", suffix=".log", dir=scratch, delete=False)
        self.process = subprocess.Popen(
            [sys.executable, str(PRELUDE), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
            text=True,
            bufsize=1,
        )

    def run(self, request: Path, work: Path, timeout: int) -> tuple[bool, str]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"request": str(request), "cwd": str(work)}) + "\n")
        self.process.stdin.flush()
        pid = json.loads(self._read_line(timeout=120) or "{}").get("pid")
        if pid is None:
            return True, self._last_log_line()
        reply = self._read_line(timeout)
        if reply is None:
            os.kill(pid, signal.SIGKILL)
            self._read_line(timeout=60)
            return False, ""
        return True, self._last_log_line()

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        if self.process.stdout:
            self.process.stdout.close()
        self.log.close()

    def _read_line(self, timeout: float) -> str | None:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        return self.process.stdout.readline() if ready else None

    def _last_log_line(self) -> str:
        self.log.flush()
        lines = Path(self.log.name).read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""


def _compare(blocks: tuple[CodeBlock, ...], results: list[dict[str, str | None]]) -> list[Diagnostic]:
    problems = []
    for block, result in zip(blocks, results, strict=False):
        if result.get("error"):
            line = result.get("line")
            location = block.location if not line else Location(block.location.path, int(line), 1)
            problems.append(
                error(location, f"code raised {result['error']}", "fix the code, or mark the fence 'no-run: <why>'")
            )
            break  # later blocks did not run
        if block.expected_output is None:
            continue
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
    return problems


def normalise_output(text: str) -> str:
    """Ignore trailing spaces and blank lines at the end."""
    return "\n".join(line.rstrip() for line in text.strip("\n").split("\n")).rstrip()


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.split("\n")) if text else "    (nothing)"
