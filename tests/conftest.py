"""Shared fixtures: small content trees written on the fly, a real Anki collection, optional tools."""

from __future__ import annotations

import importlib
import os
import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, NoReturn

import pytest
from click.testing import CliRunner
from hypothesis import settings

from generator.verify.runner import RunReport

if TYPE_CHECKING:
    from _pytest.terminal import TerminalReporter

T0 = 1_700_000_000  # a fixed build time for tests

# CI replays the same generated examples on every run (a failure there is reproducible, never luck);
# a developer's run explores new ones and keeps what failed in .hypothesis/.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

WriteCard = Callable[..., Path]

# How to get each optional dependency the tests use.
INSTALL_HINTS = {
    "anki": "pip install -e '.[test]'",
    "keras": "pip install -e '.[verify]'",
    "jax": "pip install -e '.[verify]'",
    "tensorflow": "pip install -e '.[verify]'",
    "matplotlib": "pip install -e '.[figures]'",
    "chromium": "apt-get install chromium",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="Rewrite the expected HTML in tests/golden/ from the current rendering (then review the diff).",
    )


def skip_or_fail(reason: str) -> NoReturn:
    """Skip a test whose optional dependency is missing; fail instead under CI, which installs them all."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide this: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require_module(name: str) -> ModuleType:
    """Import an optional dependency, or skip (fail under CI) saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        skip_or_fail(f"needs {name} ({INSTALL_HINTS.get(name.split('.')[0], 'not installed')}): {exc}")


def require_program(*names: str) -> str:
    """The path of the first of these programs found on PATH, or skip (fail under CI)."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    skip_or_fail(f"needs {names[0]} ({INSTALL_HINTS.get(names[0], 'not installed')}): not on PATH")


@pytest.fixture(autouse=True, scope="session")
def own_signing_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The tests' own state folder, so the cache's signing key is theirs: never the developer's, and
    writable wherever the tests run (a CI with a read-only home and its cache folder elsewhere)."""
    from generator import cache as cache_module

    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
    cache_module._key_and_problem.cache_clear()
    yield
    patch.undo()
    cache_module._key_and_problem.cache_clear()


@pytest.fixture
def content(tmp_path: Path) -> Path:
    """An empty content tree with an umbrella name and two topics."""
    root = tmp_path / "content"
    root.mkdir()
    (root / "deckset.yaml").write_text("name: Test Decks\n")
    for order, (key, name) in enumerate((("alpha", "Alpha Topic"), ("beta", "Beta Topic"))):
        (root / key).mkdir()
        (root / key / "topic.yaml").write_text(f"name: {name}\ndescription: About {key}.\norder: {order}\n")
    return root


@pytest.fixture
def write_card(content: Path) -> WriteCard:
    """Write `content/<topic>/<name>.md` from front-matter lines and a body."""

    def write(topic: str, name: str, front_matter: str, body: str) -> Path:
        path = content / topic / f"{name}.md"
        text = "---\n" + textwrap.dedent(front_matter).strip("\n") + "\n---\n" + textwrap.dedent(body).lstrip("\n")
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def sample_cards(write_card: WriteCard) -> None:
    """One card of each kind: code, math, table, cloze, reversed."""
    write_card(
        "alpha",
        "dense",
        "id: alpha-dense\ntags: [code]\nsource: [seed.txt#1]",
        """
        # How do you build a Dense layer?

        Call `keras.layers.Dense(units)`:

        ```python
        import keras
        layer = keras.layers.Dense(4)
        ```
        """,
    )
    write_card(
        "alpha",
        "sigmoid",
        "id: alpha-sigmoid\ntags: [math]\nsource: [seed.txt#2]",
        r"""
        # What is the sigmoid function?

        $$\sigma(x) = \frac{1}{1 + e^{-x}}$$

        Its output lies in $(0, 1)$ and $\sigma'(x) = \sigma(x)(1-\sigma(x))$, with *emphasis* kept.
        """,
    )
    write_card(
        "alpha",
        "table",
        "id: alpha-table\ntags: [comparison]\nsource: [seed.txt#3]",
        """
        # L1 or L2?

        | | L1 | L2 |
        |---|---|---|
        | weights | sparse | small |
        """,
    )
    write_card(
        "beta",
        "cloze",
        "id: beta-cloze\ntags: [math]\ntype: cloze\nsource: [seed.txt#4]",
        r"""
        # Softmax

        Softmax maps logits to {{c1::probabilities}}: {{c2::$\frac{e^{z_i}}{\sum_j e^{z_j}}$}}.
        %
        The outputs sum to one.
        """,
    )
    write_card(
        "beta",
        "reversed",
        "id: beta-epoch\ntags: [concept]\ntype: reversed\nsource: [seed.txt#5]",
        """
        # Epoch

        One full pass over the training data.
        """,
    )


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def collection_factory(tmp_path: Path) -> Iterator[Callable[[], object]]:
    """Make fresh, empty Anki collections (closed again after the test)."""
    Collection = require_module("anki.collection").Collection  # noqa: N806 (the class, by its own name)

    opened: list[Collection] = []

    def make() -> Collection:
        folder = tmp_path / f"anki-{len(opened)}"
        folder.mkdir()
        collection = Collection(str(folder / "collection.anki2"))
        opened.append(collection)
        return collection

    yield make
    for collection in opened:
        collection.close()


CODE_REPORT = pytest.StashKey[RunReport]()


def pytest_terminal_summary(terminalreporter: TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    """Say how many card code blocks ran, were exempt, and had their output checked."""
    report = config.stash.get(CODE_REPORT, None)
    if report is not None:
        terminalreporter.write_line(f"card {report.summary()}")
