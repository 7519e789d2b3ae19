"""Runs one card's code blocks (started by `runcode.py` in a fresh process).

Before the card's code it enters the sandbox (see `isolate`), fixes the seeds,
cuts the network at the Python level too (defence in depth), and replaces data
sources that would download: dataset loaders return small random arrays of the
real shapes and dtypes, pre-trained weights become random, ImageNet labels are
placeholders. Nothing else is changed: the blocks run exactly as shown.

The result file is rewritten after every block, so when the process dies
(a crash, the CPU limit, a kill) the parent still sees which blocks ran.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import functools
import importlib
import importlib.abc
import importlib.machinery
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
from typing import Any, NoReturn

# Extra CPU-seconds between the soft limit (a Python exception at the running
# line) and the hard one (SIGKILL), for code stuck in C that never sees the exception.
HARD_LIMIT_GRACE = 15


# Linux namespace and mount flags (<sched.h>, <sys/mount.h>, <sys/prctl.h>).
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x8, 0x4000, 0x40000
PR_SET_PDEATHSIG = 1


class SandboxError(Exception):
    """The sandbox could not be set up; the message says which step failed and why."""


class CPUTimeExceeded(BaseException):
    """The card used up its CPU time; a BaseException so `except Exception` in card code cannot swallow it."""


def _no_network(*args: object, **kwargs: object) -> None:
    raise OSError("network access is disabled while card code is tested")


def _libc(name: str, *args: object) -> None:
    """Call a libc function that returns 0 on success (Python 3.11 has no os.unshare)."""
    try:
        function = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError) as exc:
        raise SandboxError(f"{name} is not available: {exc}") from None
    if function(*args) != 0:
        code = ctypes.get_errno()
        raise SandboxError(f"{name}: {os.strerror(code)}")


def isolate() -> None:
    """Run the rest of this program in a sandbox: new user, network, PID and mount namespaces.

    The network namespace has no interface but a loopback that is down: no
    connection leaves it, even one made below Python's socket module. The PID
    namespace with its own /proc hides every other process, so card code can
    neither read another process's environment (the build's tokens) nor signal
    it. Only the caller's own user id is mapped: card code keeps no privilege.

    Returns in the process that is to run the card, the third in a chain: this
    process waits for PID 1 of the new namespace, which waits for the card and
    passes on how it ended; this process then ends the same way, so whoever
    started it sees the card's exit status, signal and CPU time. Raises
    SandboxError, having changed nothing that card code could use, when the
    system offers no such sandbox.
    """
    if not sys.platform.startswith("linux"):
        raise SandboxError(f"namespaces are Linux only (this is {sys.platform})")
    uid, gid = os.getuid(), os.getgid()
    sys.stdout.flush()
    sys.stderr.flush()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash leaves no core file behind
    # Creating the namespaces needs a single-threaded process: a fresh interpreter, or a fork.
    _libc("unshare", CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID)
    try:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    except OSError as exc:
        raise SandboxError(f"cannot map the user id: {exc.strerror}") from None
    reader, writer = os.pipe()
    init = os.fork()  # the first child is PID 1 of the new namespace
    if init:
        os.close(writer)
        _, status = os.waitpid(init, 0)
        with os.fdopen(reader, "rb") as pipe:
            report = pipe.read().decode()
        if report.startswith("error "):
            raise SandboxError(report.removeprefix("error "))
        _end_as(int(report) if report else status)
    os.close(reader)
    try:
        # If the process above is killed (the wall-clock limit), the namespace and the card die with it.
        _libc("prctl", PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL))
        os.setsid()  # card code signalling "its process group" reaches only the sandbox
        _libc("mount", None, b"/", None, ctypes.c_ulong(MS_REC | MS_PRIVATE), None)
        _libc("mount", b"proc", b"/proc", b"proc", ctypes.c_ulong(MS_NOSUID | MS_NODEV | MS_NOEXEC), None)
    except (SandboxError, OSError) as exc:
        os.write(writer, f"error {exc}".encode())
        os._exit(1)
    card = os.fork()
    if card == 0:
        os.close(writer)
        return
    # PID 1 ignores signals it has no handler for, so card code cannot end it early.
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(number, signal.SIG_DFL)
    while True:  # reap orphans the card leaves, until the card itself ends
        pid, status = os.waitpid(-1, 0)
        if pid == card:
            os.write(writer, str(status).encode())
            os._exit(0)


def _end_as(status: int) -> NoReturn:
    """End this process as the wait status says the card ended: the same exit code, or the same signal."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        with contextlib.suppress(OSError, ValueError):  # SIGKILL cannot be caught: it needs no reset
            signal.signal(number, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {number})
        os.kill(os.getpid(), number)
        os._exit(128 + number)  # a signal whose default is to be ignored
    os._exit(os.waitstatus_to_exitcode(status))


def probe() -> None:
    """Print 'ok' from inside the sandbox, or why there is none (run by the parent before any card)."""
    try:
        isolate()
    except SandboxError as exc:
        sys.stdout.write(f"{exc}\n")
        return
    sys.stdout.write("ok\n")


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
    _seed_keras(keras)
    _fake_datasets(keras, np)
    _random_pretrained_weights(keras)


def _seed_keras(keras: Any) -> None:
    """`keras.utils.set_random_seed(0)`, but TensorFlow is seeded when the card imports it, not before.

    set_random_seed imports TensorFlow only to seed it: two CPU-seconds on every
    card, where most cards never touch TensorFlow. Its seed is the same whether
    set before the import or right after it, since no TensorFlow op can run in between.
    """
    lazy_tensorflow = importlib.import_module("keras.src.utils.module_utils").tensorflow
    if "tensorflow" in sys.modules or lazy_tensorflow.module is not None:
        keras.utils.set_random_seed(0)
        return
    lazy_tensorflow._available = False  # Keras' own "is TensorFlow installed", asked again below
    try:
        keras.utils.set_random_seed(0)
    finally:
        lazy_tensorflow._available = None
    sys.meta_path.insert(0, _AfterImport("tensorflow", lambda tf: tf.random.set_seed(0)))


class _AfterImport(importlib.abc.MetaPathFinder):
    """Calls `then(module)` once the module `name` has been loaded (by anyone, the first time).

    Only a real load uses it up: a lookup such as `importlib.util.find_spec(name)`
    gets the spec through a loader that does nothing more until the module runs.
    """

    def __init__(self, name: str, then: Callable[[Any], None]) -> None:
        self.name = name
        self.then = then

    def find_spec(self, fullname: str, path: Any = None, target: object = None) -> Any:
        if fullname != self.name:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _ThenLoader(spec.loader, self)
        return spec


class _ThenLoader(importlib.abc.Loader):
    """The module's own loader, followed by the hook's `then` once the module has run."""

    def __init__(self, loader: Any, hook: _AfterImport) -> None:
        self.loader = loader
        self.hook = hook

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.loader.exec_module(module)
        if self.hook in sys.meta_path:
            sys.meta_path.remove(self.hook)
            self.hook.then(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)  # resource readers and the like: the real loader's


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
    os.environ["HOME"] = request["home"]  # a fresh, empty folder for each card
    if request["sandbox"]:  # the parent found the sandbox available: then it is required
        try:
            isolate()
        except SandboxError as exc:
            sys.exit(f"card code not run: the sandbox could not be set up ({exc})")
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
    elif sys.argv[1] == "--probe":
        probe()
    else:
        main(sys.argv[1])
