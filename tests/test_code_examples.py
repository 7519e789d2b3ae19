"""Every python block on the cards runs under Keras 3, and every stated output is what it prints.

All of it is slow: the real cards, and Keras. How the runner reports each kind of
failure is tested quickly, without Keras, in test_runcode.py.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from generator.build import compile_release
from generator.cli import main
from generator.release.manifest import EMPTY
from generator.verify.runner import Program, extract_program, missing_verify_extra, run_programs
from tests.conftest import CODE_REPORT, WriteCard, skip_or_fail

pytestmark = pytest.mark.slow

CONTENT = Path(__file__).resolve().parents[1] / "content"
# Read from the card file itself, not through the parser that produced `no_run`.
EXEMPT_FENCE = re.compile(r"^\s*(`{3,}|~{3,})python\s+no-run:\s*(?P<reason>.*?)\s*$")


@pytest.fixture(scope="module")
def programs() -> list[Program]:
    release = compile_release(CONTENT, EMPTY, 0)
    return [extract_program(r.card) for r in release.cards]


@pytest.fixture
def verify_extra() -> None:
    problem = missing_verify_extra()
    if problem is not None:
        skip_or_fail(problem)


class TopicProgress:
    """One terminal line per topic once all its cards have run, so a long run shows where it is."""

    def __init__(self, programs: list[Program], request: pytest.FixtureRequest) -> None:
        self.left = Counter(p.path.parent.name for p in programs if p.runnable)
        self.total = sum(self.left.values())
        self.done = 0
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.terminal = request.config.pluginmanager.get_plugin("terminalreporter")
        self.capture = request.config.pluginmanager.get_plugin("capturemanager")

    def __call__(self, program: Program) -> None:
        with self.lock:
            topic = program.path.parent.name
            self.left[topic] -= 1
            self.done += 1
            if self.left[topic] == 0 and self.terminal is not None and self.capture is not None:
                elapsed = time.monotonic() - self.started
                with self.capture.global_and_fixture_disabled():  # shown while the test runs, not after
                    self.terminal.write_line(
                        f"card code: {topic} done ({self.done}/{self.total} cards, {elapsed:.0f} s)"
                    )


@pytest.mark.usefixtures("verify_extra")
def test_every_card_example_runs_and_prints_what_the_card_says(
    programs: list[Program], request: pytest.FixtureRequest
) -> None:
    report = run_programs(programs, workers=2, progress=TopicProgress(programs, request))
    request.config.stash[CODE_REPORT] = report
    assert not report.problems, "\n".join(p.format() for p in report.problems)
    assert report.blocks_not_run == 0
    assert report.blocks_run == sum(len(p.runnable) for p in programs) >= 100
    assert report.outputs_checked >= 40


def test_exemptions_are_explicit_and_rare(programs: list[Program]) -> None:
    blocks = [b for p in programs for b in p.blocks]
    exempt = [b for b in blocks if b.no_run is not None]
    for block in exempt:
        fence = block.location.path.read_text(encoding="utf-8").splitlines()[block.location.line - 1]
        match = EXEMPT_FENCE.match(fence)
        assert match, f"{block.location}: not a 'python no-run: <why>' fence: {fence!r}"
        assert match["reason"] == block.no_run
        assert len(match["reason"].split()) >= 2, f"{block.location}: say why the code must not run"
    assert len(exempt) < 0.05 * len(blocks)


@pytest.mark.usefixtures("verify_extra")
def test_broken_code_and_wrong_output_are_reported(content: Path, write_card: WriteCard) -> None:
    write_card(
        "alpha",
        "broken",
        "id: alpha-broken\ntags: [code]\nsource: [s#1]",
        """
        # What does this print?

        ```python
        import keras
        layer = keras.layers.Dense(3)
        layer.build((None, 4))
        print(layer.count_params())
        ```

        ```output
        12
        ```

        ```python
        print(undefined_name)
        ```
        """,
    )
    write_card(
        "beta",
        "exempt",
        "id: beta-exempt\ntags: [code]\nsource: [s#2]",
        "# Old API?\n\n```python no-run: TensorFlow 1 only\nsess = tf.Session()\n```\n",
    )
    result = CliRunner().invoke(main, ["check", "--content", str(content), "--run-code"])
    assert result.exit_code == 1
    card = content / "alpha" / "broken.md"
    assert f"{card}:15:1: error: printed output differs from the card's output block" in result.stderr
    assert "expected:\n    12\n  actual:\n    15" in result.stderr
    assert f"{card}:20:1: error: code raised NameError: name 'undefined_name' is not defined" in result.stderr
    assert "code: 2 blocks run in 1 cards, 1 exempt, 1 outputs checked, 2 failures" in result.stdout


@pytest.mark.usefixtures("verify_extra")
def test_card_code_has_no_network(content: Path, write_card: WriteCard) -> None:
    write_card(
        "alpha",
        "net",
        "id: alpha-net\ntags: [code]\nsource: [s#1]",
        """
        # Can card code download?

        ```python
        import keras
        (x_train, y_train), _ = keras.datasets.mnist.load_data()
        print(x_train.shape[1:], x_train.dtype)
        import urllib.request
        try:
            urllib.request.urlopen("http://example.com", timeout=5)
        except OSError as exc:
            print("blocked")
        ```

        ```output
        (28, 28) uint8
        blocked
        ```
        """,
    )
    assert_one_card_passes(content)


@pytest.mark.usefixtures("verify_extra")
def test_tensorflow_is_seeded_even_when_imported_late_by_a_jax_card(content: Path, write_card: WriteCard) -> None:
    # The card reaches TensorFlow without the words the runner looks for, so it runs on JAX,
    # where the seed is set when TensorFlow is first imported (importing it up front costs seconds).
    write_card(
        "alpha",
        "late-tf",
        "id: alpha-late-tf\ntags: [code]\nsource: [s#1]",
        """
        # Is TensorFlow seeded?

        ```python
        import importlib
        import importlib.util
        import keras
        print(keras.backend.backend())
        print(importlib.util.find_spec("tensor" + "flow") is not None)  # a lookup loads nothing
        tf = importlib.import_module("tensor" + "flow")
        first = float(tf.random.uniform(()))
        tf.random.set_seed(0)
        print(first == float(tf.random.uniform(())))
        ```

        ```output
        jax
        True
        True
        ```
        """,
    )
    assert_one_card_passes(content)


def assert_one_card_passes(content: Path) -> None:
    """`decks check --run-code` runs the one card under `content` and its output matches."""
    result = CliRunner().invoke(main, ["check", "--content", str(content), "--run-code"])
    assert result.exit_code == 0, result.stderr
    assert "1 outputs checked, 0 failures" in result.stdout
