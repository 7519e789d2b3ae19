"""Side-by-side build benchmark: `decks build` against ankdown and a straightforward pipeline.

    python bench/run.py --cards 1000 10000 [--large] [--runs 3] [-v] [--json out.json] [--workdir DIR]

Every tool runs as a child process; wall time is measured around it, CPU time
(user + sys) and peak RSS come from `os.wait4`, which includes the child's own
reaped children (a process pool). This process registers as a child subreaper,
so descendants orphaned by the tool are reaped here and counted too. Rounds are
interleaved (round-robin over the tools, rotated each round) so that a burst of
load from other users of the machine spreads over all tools instead of one.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from corpus import TOPICS, CorpusStats, edit_answer, generate, to_ankdown

ROOT = Path(__file__).resolve().parents[1]
SIMPLE_SCRIPT = Path(__file__).resolve().with_name("simple.py")
PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>
ORPHAN_GRACE_SECONDS = 30.0
WARMUP_CARDS = 20
LARGE_CARDS = 50_000
STAGE_LINE = re.compile(r"^  ([a-z][a-z ]*): ([0-9.]+) s$", re.MULTILINE)  # what `decks build -v` prints

COLD = "decks build (cold)"
NO_CHANGE = "decks build (no change)"
ONE_EDIT = "decks build (one edit)"
ANKDOWN = "ankdown"
SIMPLE = "simple (Markdown + Pygments + genanki)"
HELP = "decks --help"
TOOLS = (COLD, NO_CHANGE, ONE_EDIT, ANKDOWN, SIMPLE, HELP)
TOPIC_APKGS = tuple(f"{key}.apkg" for key, _ in TOPICS)


class BenchmarkFailed(Exception):
    """A tool exited with an error or did not write what it should."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One measured run of one tool."""

    wall_s: float
    cpu_s: float
    max_rss_kb: int


@dataclass(slots=True)
class Row:
    """Every sample of one tool at one corpus size, and what it built."""

    tool: str
    cards: int
    samples: list[Sample] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)  # .apkg files of the last round
    stages: list[dict[str, float]] = field(default_factory=list)  # per sample, from `decks build -v`
    notes: int | None = None  # notes in those files (None for `decks --help`)

    @property
    def wall_s(self) -> float:
        return statistics.median(s.wall_s for s in self.samples)

    @property
    def cpu_s(self) -> float:
        return statistics.median(s.cpu_s for s in self.samples)

    @property
    def peak_rss_mb(self) -> float:
        return max(s.max_rss_kb for s in self.samples) / 1024  # Linux reports KiB


@dataclass(frozen=True, slots=True)
class DecksOptions:
    """What the installed `decks build` accepts, read from its --help."""

    cache: bool
    jobs: bool


# --- measuring one child process -------------------------------------------------------------


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux), so their CPU time is not lost to init."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def measure(command: list[str], cwd: Path, env: dict[str, str], log_stem: Path) -> Sample:
    """Run `command` to completion; return its wall time, CPU time and peak RSS."""
    log_stem.parent.mkdir(parents=True, exist_ok=True)
    out_log, err_log = log_stem.with_suffix(".out"), log_stem.with_suffix(".err")
    with out_log.open("wb") as out, err_log.open("wb") as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
    cpu = usage.ru_utime + usage.ru_stime
    peak = usage.ru_maxrss
    for orphan in _reap_orphans():
        cpu += orphan.ru_utime + orphan.ru_stime
        peak = max(peak, orphan.ru_maxrss)
    if process.returncode != 0:
        tail = err_log.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise BenchmarkFailed(f"{' '.join(command)} exited with {process.returncode}:\n{tail}")
    return Sample(wall, cpu, peak)


def _reap_orphans() -> Iterator[os.struct_rusage]:
    """Wait for descendants the tool left behind (they were re-parented to this process)."""
    deadline = time.monotonic() + ORPHAN_GRACE_SECONDS
    while True:
        try:
            pid, _, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid:
            yield usage
        elif time.monotonic() > deadline:
            raise BenchmarkFailed(f"a process left behind by the tool still runs after {ORPHAN_GRACE_SECONDS} s")
        else:
            time.sleep(0.01)


# --- the tools -------------------------------------------------------------------------------


def decks_command(*args: str) -> list[str]:
    # The same interpreter as this script, so the benchmark measures this checkout's generator.
    return [sys.executable, "-m", "generator", *args]


def read_decks_options() -> DecksOptions:
    # Not from ROOT: `-m` looks in the working folder first, which would hide a PYTHONPATH checkout.
    run = subprocess.run(decks_command("build", "--help"), cwd=tempfile.gettempdir(), capture_output=True, text=True)
    if run.returncode != 0:
        raise BenchmarkFailed(f"decks build --help failed:\n{run.stderr[-2000:]}")
    help_text = run.stdout
    return DecksOptions(
        cache=re.search(r"--cache\b", help_text) is not None, jobs=re.search(r"--jobs\b", help_text) is not None
    )


@dataclass(frozen=True, slots=True)
class Corpus:
    """One corpus size: our cards, their ankdown twin, and the folders the tools use."""

    cards: int
    folder: Path
    stats: CorpusStats

    @property
    def content(self) -> Path:
        return self.folder / "content"

    @property
    def ankdown_input(self) -> Path:
        return self.folder / "ankdown-input"

    @property
    def cache(self) -> Path:
        return self.folder / "decks-cache"

    @property
    def xdg_cache(self) -> Path:
        return self.folder / "xdg-cache"

    def round_dir(self, round_number: int) -> Path:
        return self.folder / f"round-{round_number}"


def prepare_corpus(work: Path, cards: int, seed: int) -> Corpus:
    folder = work / f"cards-{cards}"
    corpus = Corpus(cards, folder, generate(folder / "content", cards, seed))
    to_ankdown(corpus.content, corpus.ankdown_input)
    return corpus


class Bench:
    """Runs the tools on the corpora and collects their samples."""

    def __init__(self, options: DecksOptions, verbose: bool = False) -> None:
        self.options = options
        self.verbose = verbose
        self.rows: dict[tuple[str, int], Row] = {}

    def env(self, corpus: Corpus) -> dict[str, str]:
        # A default cache under XDG_CACHE_HOME would survive cold runs: point it into the work folder.
        environment = {**os.environ, "XDG_CACHE_HOME": str(corpus.xdg_cache)}
        # Installed tools run from bytecode: let the warm-up write it, or every run compiles from source.
        environment.pop("PYTHONDONTWRITEBYTECODE", None)
        return environment

    def record(self, tool: str, corpus: Corpus, sample: Sample | None, outputs: list[Path]) -> None:
        row = self.rows.setdefault((tool, corpus.cards), Row(tool, corpus.cards))
        if sample is not None:
            row.samples.append(sample)
        row.outputs = [str(p) for p in outputs]

    def run_decks(self, corpus: Corpus, round_number: int, measured: bool) -> None:
        """Cold build into a fresh dist, then a rebuild with no change, then one after a one-card edit."""
        folder = corpus.round_dir(round_number)
        dist = folder / "decks-dist"
        dist.mkdir(parents=True)
        for cache in (corpus.cache, corpus.xdg_cache):
            shutil.rmtree(cache, ignore_errors=True)
            cache.mkdir()
        command = decks_command("build", "--content", str(corpus.content), "--dist", str(dist))
        if self.options.cache:
            command += ["--cache", str(corpus.cache)]
        if self.verbose:
            command.append("-v")  # stage timings; printing them costs nothing measurable
        edited_topic, _ = TOPICS[round_number % min(len(TOPICS), corpus.cards)]  # a topic that has a card 0
        edited_card = corpus.content / edited_topic / "card-00000.md"
        for tool in (COLD, NO_CHANGE, ONE_EDIT):
            original = edit_answer(edited_card, f"Edited{round_number}") if tool == ONE_EDIT else None
            log = folder / "logs" / _slug(tool)
            try:
                sample = measure(command, folder, self.env(corpus), log)
            finally:
                if original is not None:
                    edited_card.write_text(original, encoding="utf-8")
            outputs = expect_files(dist, (*TOPIC_APKGS, "all-topics.apkg"))
            self.record(tool, corpus, sample if measured else None, outputs)
            if measured and self.verbose:
                stages = read_stages(log.with_suffix(".out").read_text(encoding="utf-8", errors="replace"))
                self.rows[(tool, corpus.cards)].stages.append({**stages, "rest": sample.wall_s - sum(stages.values())})

    def run_ankdown(self, corpus: Corpus, round_number: int, measured: bool) -> None:
        folder = corpus.round_dir(round_number) / "ankdown"
        folder.mkdir(parents=True)
        package = folder / "ankdown.apkg"
        # --highlight: Pygments on code blocks, as the other two tools do.
        command = [sys.executable, "-m", "ankdown.ankdown", "-r", str(corpus.ankdown_input), "-p", str(package)]
        sample = measure([*command, "--highlight"], folder, self.env(corpus), folder / "log")
        self.record(ANKDOWN, corpus, sample if measured else None, expect_files(folder, ("ankdown.apkg",)))

    def run_simple(self, corpus: Corpus, round_number: int, measured: bool) -> None:
        folder = corpus.round_dir(round_number) / "simple"
        command = [sys.executable, str(SIMPLE_SCRIPT), str(corpus.content), str(folder / "out")]
        sample = measure(command, corpus.round_dir(round_number), self.env(corpus), folder / "log")
        self.record(SIMPLE, corpus, sample if measured else None, expect_files(folder / "out", TOPIC_APKGS))

    def run_help(self, corpus: Corpus, round_number: int, measured: bool) -> None:
        folder = corpus.round_dir(round_number)
        folder.mkdir(parents=True, exist_ok=True)
        sample = measure(decks_command("--help"), folder, self.env(corpus), folder / "logs" / "help")
        self.record(HELP, corpus, sample if measured else None, [])

    def round(self, corpus: Corpus, round_number: int, measured: bool = True) -> None:
        """One run of every tool, starting at a different tool each round."""
        groups: list[Callable[[Corpus, int, bool], None]] = [
            self.run_decks,
            self.run_ankdown,
            self.run_simple,
            self.run_help,
        ]
        shift = round_number % len(groups)
        for run in groups[shift:] + groups[:shift]:
            run(corpus, round_number, measured)


def expect_files(folder: Path, names: tuple[str, ...]) -> list[Path]:
    """The named files in `folder`; fail if one is missing or empty."""
    paths = [folder / name for name in names]
    missing = [p.name for p in paths if not p.is_file() or p.stat().st_size == 0]
    if missing:
        raise BenchmarkFailed(f"{folder}: missing {', '.join(missing)}")
    return paths


def count_notes(apkg: Path) -> int:
    """Notes in a package's collection."""
    with zipfile.ZipFile(apkg) as archive, tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "collection.anki2"
        database.write_bytes(archive.read("collection.anki2"))
        with contextlib.closing(sqlite3.connect(database)) as connection:
            return int(connection.execute("SELECT count(*) FROM notes").fetchone()[0])


def count_built_notes(row: Row) -> int | None:
    """Notes over the tool's per-topic packages (all-topics.apkg repeats them)."""
    packages = [Path(p) for p in row.outputs if Path(p).name != "all-topics.apkg"]
    return sum(count_notes(p) for p in packages) if packages else None


# --- the report ------------------------------------------------------------------------------


def read_stages(output: str) -> dict[str, float]:
    """Seconds per stage from the output of `decks build -v`."""
    return {name: float(seconds) for name, seconds in STAGE_LINE.findall(output)}


def stage_table(rows: list[Row]) -> str:
    """Median seconds per stage of each `decks build` row; 'rest' is start-up, checks and publishing."""
    measured = [row for row in rows if row.stages]
    names = list(dict.fromkeys(name for row in measured for sample in row.stages for name in sample))
    lines = [f"| tool | cards | {' | '.join(names)} |", "| --- | ---: |" + " ---: |" * len(names)]
    for row in measured:
        medians = [
            statistics.median(sample.get(name, 0.0) for sample in row.stages) for name in names
        ]  # fmt: skip
        lines.append(f"| {row.tool} | {row.cards:,} | " + " | ".join(f"{m:.2f}" for m in medians) + " |")
    return "\n".join(lines)


def versus_ankdown(rows: list[Row]) -> dict[tuple[str, int], tuple[float, float]]:
    """Each row's CPU and wall time divided by ankdown's at the same size."""
    baseline = {row.cards: row for row in rows if row.tool == ANKDOWN}
    return {
        (row.tool, row.cards): (row.cpu_s / baseline[row.cards].cpu_s, row.wall_s / baseline[row.cards].wall_s)
        for row in rows
    }


def markdown_table(rows: list[Row]) -> str:
    ratios = versus_ankdown(rows)
    lines = [
        "| tool | cards | wall s | CPU s | peak RSS MB | CPU ÷ ankdown | wall ÷ ankdown |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        cpu_ratio, wall_ratio = ratios[(row.tool, row.cards)]
        lines.append(
            f"| {row.tool} | {row.cards:,} | {row.wall_s:.2f} | {row.cpu_s:.2f} | {row.peak_rss_mb:.0f} "
            f"| {cpu_ratio:.2f} | {wall_ratio:.2f} |"
        )
    return "\n".join(lines)


def scaling(rows: list[Row], small: int, large: int) -> dict[str, dict[str, float]]:
    """Per tool, how much wall and CPU time grow from the smallest corpus to the largest."""
    by_key = {(row.tool, row.cards): row for row in rows}
    result = {}
    for tool in TOOLS:
        low, high = by_key.get((tool, small)), by_key.get((tool, large))
        if low and high:
            result[tool] = {"wall": high.wall_s / low.wall_s, "cpu": high.cpu_s / low.cpu_s}
    return result


def scaling_table(ratios: dict[str, dict[str, float]], small: int, large: int) -> str:
    lines = [
        f"| tool | wall {large:,} ÷ {small:,} | CPU {large:,} ÷ {small:,} |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {tool} | {r['wall']:.2f} | {r['cpu']:.2f} |" for tool, r in ratios.items()]
    return "\n".join(lines)


def machine() -> dict[str, object]:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "generator"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    decks_source = subprocess.run(
        [sys.executable, "-c", "import generator; print(generator.__file__)"],
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "decks_source": decks_source,  # PYTHONPATH can point `-m generator` at another checkout
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "commit": commit,
        "generator_modified_since_commit": bool(dirty.strip()),
        "ankdown": importlib.metadata.version("ankdown"),
    }


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def say(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


# --- main ------------------------------------------------------------------------------------


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cards", type=int, nargs="+", default=[1000, 10000], help="corpus sizes")
    parser.add_argument("--runs", type=int, default=3, help="measured rounds (use at least 3 for real numbers)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--workdir", type=Path, help="keep corpora and outputs here (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed")
    parser.add_argument("--large", action="store_true", help=f"add a {LARGE_CARDS:,}-card corpus (slow)")
    parser.add_argument("-v", "--verbose", action="store_true", help="per-stage seconds of each decks build")
    arguments = parser.parse_args(argv)
    if arguments.large:
        arguments.cards = [*arguments.cards, LARGE_CARDS]
    if arguments.runs < 1 or min(arguments.cards) < 1:
        parser.error("--runs and --cards must be positive")
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if importlib.util.find_spec("ankdown") is None:
        say("ankdown is not installed: pip install -e '.[bench]'")
        return 2
    subreaper = become_subreaper()
    options = read_decks_options()
    environment = machine()
    sizes = sorted(set(arguments.cards))
    with contextlib.ExitStack() as stack:
        if arguments.workdir is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="decks-bench-")))
        else:
            work = arguments.workdir.resolve()
            work.mkdir(parents=True, exist_ok=True)
        say(f"corpora in {work}; decks build options: cache={options.cache}, jobs={options.jobs}")
        corpora = [prepare_corpus(work, n, arguments.seed) for n in sizes]
        bench = Bench(options, verbose=arguments.verbose)
        # Unmeasured: compiles bytecode and warms the file cache for every tool.
        bench.round(prepare_corpus(work / "warmup", WARMUP_CARDS, arguments.seed), 0, measured=False)
        load_before = os.getloadavg()
        started = time.perf_counter()
        for round_number in range(1, arguments.runs + 1):
            # Alternate the size order too, so neither size always runs first.
            for corpus in corpora if round_number % 2 else corpora[::-1]:
                say(f"round {round_number}/{arguments.runs}: {corpus.cards:,} cards")
                bench.round(corpus, round_number)
        load_after = os.getloadavg()
        rows = [bench.rows[(tool, n)] for n in sizes for tool in TOOLS]
        for row in rows:
            row.notes = count_built_notes(row)
            if row.notes is not None and row.notes != row.cards:
                raise BenchmarkFailed(f"{row.tool} built {row.notes} notes from {row.cards} cards")

    report = markdown_table(rows)
    if arguments.verbose:
        report += "\n\nStages of decks build (median seconds):\n\n" + stage_table(rows)
    ratios = scaling(rows, sizes[0], sizes[-1]) if len(sizes) > 1 else {}
    if ratios:
        report += "\n\nScaling (largest corpus over smallest):\n\n" + scaling_table(ratios, sizes[0], sizes[-1])
    load = f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    report += f"\n\n{arguments.runs} interleaved rounds in {time.perf_counter() - started:.0f} s; {load}.\n"
    sys.stdout.write(report)
    if arguments.json is not None:
        relative = versus_ankdown(rows)
        results = {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "rounds": arguments.runs,
            "seed": arguments.seed,
            "machine": environment,
            "load_average_before": load_before,
            "load_average_after": load_after,
            "child_subreaper": subreaper,
            "decks_build_options": asdict(options),
            "corpora": [asdict(c.stats) for c in corpora],
            "rows": [
                {
                    "tool": row.tool,
                    "cards": row.cards,
                    "wall_s": row.wall_s,
                    "cpu_s": row.cpu_s,
                    "peak_rss_mb": row.peak_rss_mb,
                    "cpu_vs_ankdown": relative[(row.tool, row.cards)][0],
                    "wall_vs_ankdown": relative[(row.tool, row.cards)][1],
                    "samples": [asdict(s) for s in row.samples],
                    "outputs": row.outputs,
                    "notes": row.notes,
                    "stages": row.stages,
                }
                for row in rows
            ],
            "scaling": ratios,
        }
        arguments.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkFailed as failure:
        say(f"benchmark failed: {failure}")
        sys.exit(1)
