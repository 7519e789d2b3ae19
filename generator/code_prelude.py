"""Runs one card's code blocks (started by `runcode.py` in a fresh process).

Before the card's code it fixes the seeds, cuts the network, and replaces data
sources that would download: dataset loaders return small random arrays of the
real shapes and dtypes, pre-trained weights become random, ImageNet labels are
placeholders. Nothing else is changed: the blocks run exactly as shown.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import io
import json
import random
import socket
import sys
import traceback
from pathlib import Path


def _no_network(*args: object, **kwargs: object) -> None:
    raise OSError("network access is disabled while card code is tested")


def _cut_network() -> None:
    socket.create_connection = _no_network  # type: ignore[assignment]
    socket.socket.connect = _no_network  # type: ignore[method-assign]


def _fake_datasets(keras: object, np: object) -> None:
    rng = np.random.default_rng(0)

    def images(shape: tuple[int, ...], classes: int, label_shape: tuple[int, ...] = ()):
        def load_data(*args: object, **kwargs: object):
            def split(n: int):
                x = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
                y = rng.integers(0, classes, size=(n, *label_shape)).astype(np.uint8)
                return x, y

            return split(256), split(64)

        return load_data

    def sequences(classes: int):
        def load_data(*args: object, num_words: int | None = None, maxlen: int | None = None, **kwargs: object):
            vocabulary = num_words or 10000

            def split(n: int):
                x = np.empty(n, dtype=object)
                for i in range(n):
                    x[i] = [1, *rng.integers(2, vocabulary, size=int(rng.integers(10, maxlen or 200))).tolist()]
                return x, rng.integers(0, classes, size=n).astype(np.int64)

            return split(256), split(64)

        return load_data

    def regression(*args: object, **kwargs: object):
        def split(n: int):
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


def _random_pretrained_weights(keras: object) -> None:
    def without_download(builder):
        @functools.wraps(builder)
        def build(*args: object, **kwargs: object):
            if kwargs.get("weights") == "imagenet" or "weights" not in kwargs:
                kwargs["weights"] = None
            return builder(*args, **kwargs)

        return build

    def fake_decode_predictions(predictions, top: int = 5):
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


def _takes_weights(function: object) -> bool:
    try:
        return "weights" in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _prepare() -> None:
    random.seed(0)
    _cut_network()
    try:
        import numpy as np

        np.random.seed(0)
        import keras
    except ImportError:
        return
    keras.utils.set_random_seed(0)
    _fake_datasets(keras, np)
    _random_pretrained_weights(keras)


def main(request_path: str) -> None:
    request = json.loads(Path(request_path).read_text())
    results: list[dict[str, object]] = []
    namespace: dict[str, object] = {"__name__": "__main__"}
    _prepare()
    for block in request["blocks"]:
        # Pad with newlines so tracebacks show the card file's own line numbers.
        source = "\n" * (block["line"] - 1) + block["code"]
        stdout = io.StringIO()
        result: dict[str, object] = {"stdout": "", "error": None, "line": None}
        try:
            with contextlib.redirect_stdout(stdout):
                exec(compile(source, request["path"], "exec"), namespace)
        except BaseException as exc:  # noqa: BLE001 (every failure of card code is reported, not raised)
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == request["path"]]
            result["error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]
            result["line"] = frames[-1].lineno if frames else None
        result["stdout"] = stdout.getvalue()
        results.append(result)
        if result["error"]:
            break
    Path(request["result"]).write_text(json.dumps(results))


def serve() -> None:
    """Import the heavy libraries once, then fork a fresh child per card.

    Protocol on stdin/stdout, one JSON object per line: a request
    {"request": path, "cwd": dir} is answered by {"pid": n} when the child
    starts and {"status": code} when it ends. The children write nothing to
    the protocol stream: their fd 1 goes to stderr.
    """
    import os

    import keras  # noqa: F401 (imported once here, so each card's fork starts warm)
    import numpy  # noqa: F401

    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    for line in sys.stdin:
        task = json.loads(line)
        pid = os.fork()
        if pid == 0:
            status = 0
            try:
                os.chdir(task["cwd"])
                main(task["request"])
            except BaseException:  # noqa: BLE001 (the parent reads the result file, not the exception)
                traceback.print_exc()
                status = 1
            finally:
                sys.stdout.flush()
                os._exit(status)
        protocol.write(json.dumps({"pid": pid}) + "\n")
        _, status = os.waitpid(pid, 0)
        protocol.write(json.dumps({"status": status}) + "\n")


if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        serve()
    else:
        main(sys.argv[1])
