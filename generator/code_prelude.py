"""Runs one card's code blocks (started by `runcode.py` in a fresh process).

Before the card's code it fixes the seeds, cuts the network, and replaces data
sources that would download: dataset loaders return small random arrays of the
real shapes and dtypes, pre-trained weights become random, ImageNet labels are
placeholders. Nothing else is changed: the blocks run exactly as shown.

The result file is rewritten after every block, so when the process dies
(a crash, the CPU limit, a kill) the parent still sees which blocks ran.
"""

from __future__ import annotations

import contextlib
import faulthandler
import functools
import importlib
import inspect
import io
import json
import math
import os
import random
import resource
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

# Extra CPU-seconds between the soft limit (a Python exception at the running
# line) and the hard one (SIGKILL), for code stuck in C that never sees the exception.
HARD_LIMIT_GRACE = 15


class CPUTimeExceeded(BaseException):
    """The card used up its CPU time; a BaseException so `except Exception` in card code cannot swallow it."""


def _no_network(*args: object, **kwargs: object) -> None:
    raise OSError("network access is disabled while card code is tested")


def _cut_network() -> None:
    socket.create_connection = _no_network  # type: ignore[assignment]
    socket.socket.connect = _no_network  # type: ignore[method-assign]


def _fake_datasets(keras: Any, np: Any) -> None:
    rng = np.random.default_rng(0)

    def images(shape: tuple[int, ...], classes: int, label_shape: tuple[int, ...] = ()) -> Callable[..., Any]:
        def load_data(*args: object, **kwargs: object) -> tuple[Any, Any]:
            def split(n: int) -> tuple[Any, Any]:
                x = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
                y = rng.integers(0, classes, size=(n, *label_shape)).astype(np.uint8)
                return x, y

            return split(256), split(64)

        return load_data

    def sequences(classes: int) -> Callable[..., Any]:
        def load_data(
            *args: object, num_words: int | None = None, maxlen: int | None = None, **kwargs: object
        ) -> tuple[Any, Any]:
            vocabulary = num_words or 10000

            def split(n: int) -> tuple[Any, Any]:
                x = np.empty(n, dtype=object)
                for i in range(n):
                    x[i] = [1, *rng.integers(2, vocabulary, size=int(rng.integers(10, maxlen or 200))).tolist()]
                return x, rng.integers(0, classes, size=n).astype(np.int64)

            return split(256), split(64)

        return load_data

    def regression(*args: object, **kwargs: object) -> tuple[Any, Any]:
        def split(n: int) -> tuple[Any, Any]:
            return rng.normal(size=(n, 13)), rng.uniform(5, 50, size=n)

        return split(256), split(64)

    datasets = keras.datasets
    datasets.mnist.load_data = images((28, 28), 10)
    datasets.fashion_mnist.load_data = images((28, 28), 10)
    datasets.cifar10.load_data = images((32, 32, 3), 10, (1,))
    datasets.cifar100.load_data = images((32, 32, 3), 100, (1,))
    datasets.imdb.load_data = sequences(2)
    datasets.reuters.load_data = sequences(46)
    datasets.boston_housing.load_data = regression


def _random_pretrained_weights(keras: Any) -> None:
    def without_download(builder: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(builder)
        def build(*args: object, **kwargs: object) -> Any:
            if kwargs.get("weights") == "imagenet" or "weights" not in kwargs:
                kwargs["weights"] = None
            return builder(*args, **kwargs)

        return build

    def fake_decode_predictions(predictions: Any, top: int = 5) -> list[list[tuple[str, str, float]]]:
        rows = []
        for row in predictions:
            best = row.argsort()[-top:][::-1]
            rows.append([(f"n{int(i):08d}", f"imagenet_class_{int(i)}", float(row[i])) for i in best])
        return rows

    modules = [keras.applications] + [
        getattr(keras.applications, name)
        for name in dir(keras.applications)
        if inspect.ismodule(getattr(keras.applications, name))
    ]
    for module in modules:
        for name in dir(module):
            value = getattr(module, name)
            if name[:1].isupper() and callable(value) and _takes_weights(value):
                setattr(module, name, without_download(value))
            if name == "decode_predictions":
                setattr(module, name, fake_decode_predictions)


def _takes_weights(function: Callable[..., Any]) -> bool:
    try:
        return "weights" in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _prepare(with_keras: bool) -> None:
    random.seed(0)
    _cut_network()
    try:  # optional, like Keras: imported by name so type checking does not need them installed
        np: Any = importlib.import_module("numpy")
    except ImportError:
        return
    np.random.seed(0)
    if not with_keras:  # the card does not use Keras: do not pay for importing it
        return
    try:
        keras: Any = importlib.import_module("keras")
    except ImportError:
        return  # the card's own `import keras` reports it, at its line
    keras.utils.set_random_seed(0)
    _fake_datasets(keras, np)
    _random_pretrained_weights(keras)


def _limit_cpu(seconds: float) -> None:
    """Allow `seconds` more CPU time: then CPUTimeExceeded at the running line, and SIGKILL a little later."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + seconds)
    hard = soft + HARD_LIMIT_GRACE
    _, current_hard = resource.getrlimit(resource.RLIMIT_CPU)
    if current_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, current_hard), min(hard, current_hard)

    def exceeded(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGXCPU, signal.SIG_IGN)  # the kernel repeats SIGXCPU every second; one is enough
        raise CPUTimeExceeded(f"used more than {seconds:g} s of CPU time")

    signal.signal(signal.SIGXCPU, exceeded)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _write_results(path: str, results: list[dict[str, object]]) -> None:
    partial = f"{path}.partial"
    Path(partial).write_text(json.dumps(results))
    os.replace(partial, path)  # the parent never reads a half-written file


def _describe(exc: BaseException, card_path: str) -> dict[str, object]:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == card_path]
    kind = "exception"
    if isinstance(exc, CPUTimeExceeded):
        kind = "cpu"
    elif isinstance(exc, ImportError):
        kind = "import"
    return {
        "error": "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1],
        "kind": kind,
        "module": getattr(exc, "name", None) if kind == "import" else None,
        "line": frames[-1].lineno if frames else None,
    }


def main(request_path: str) -> None:
    request = json.loads(Path(request_path).read_text())
    results: list[dict[str, object]] = []
    namespace: dict[str, object] = {"__name__": "__main__"}
    _write_results(request["result"], results)  # an empty list says the prelude started
    _prepare(request.get("keras", True))
    faulthandler.enable()  # a hard crash still prints the card's line to stderr
    _limit_cpu(request["cpu_limit"])
    for block in request["blocks"]:
        # Pad with newlines so tracebacks show the card file's own line numbers.
        source = "\n" * (block["line"] - 1) + block["code"]
        stdout = io.StringIO()
        result: dict[str, object] = {"stdout": "", "error": None, "kind": None, "module": None, "line": None}
        try:
            with contextlib.redirect_stdout(stdout):
                exec(compile(source, request["path"], "exec"), namespace)
        except BaseException as exc:  # noqa: BLE001 (every failure of card code is reported, not raised)
            result.update(_describe(exc, request["path"]))
        result["stdout"] = stdout.getvalue()
        results.append(result)
        _write_results(request["result"], results)
        if result["error"]:
            break


def serve(preload: list[str]) -> None:
    """Import the heavy libraries once, then fork a fresh child per card.

    Protocol on stdin/stdout, one JSON object per line: {"ready": [modules]}
    once the imports are done; then a request {"request": path, "cwd": dir} is
    answered by {"pid": n} when the child starts and {"status": code, "cpu":
    seconds} when it ends (code as from waitpid). A child writes its stdout and
    stderr to `stderr.txt` in its working directory, never to the protocol.
    """
    loaded = []
    for name in preload:
        try:
            importlib.import_module(name)  # imported once here, so each card's fork starts warm
        except ImportError:
            continue  # a card that needs it reports the import error at its own line
        loaded.append(name)

    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    protocol.write(json.dumps({"ready": loaded}) + "\n")
    for line in sys.stdin:
        task = json.loads(line)
        pid = os.fork()
        if pid == 0:
            status = 0
            try:
                # Once the server is gone the parent must see the protocol close: the child keeps no copy.
                os.close(protocol.fileno())
                sys.stdin = open(os.devnull)  # lives until os._exit
                os.dup2(sys.stdin.fileno(), 0)
                output = os.open(os.path.join(task["cwd"], "stderr.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(output, 1)
                os.dup2(output, 2)
                os.chdir(task["cwd"])
                main(task["request"])
            except BaseException:  # noqa: BLE001 (the parent reads the result file, not the exception)
                traceback.print_exc()
                status = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        protocol.write(json.dumps({"pid": pid}) + "\n")
        _, status, usage = os.wait4(pid, 0)
        protocol.write(json.dumps({"status": status, "cpu": usage.ru_utime + usage.ru_stime}) + "\n")


if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        serve(sys.argv[2:])
    else:
        main(sys.argv[1])
