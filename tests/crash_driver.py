"""Child side of tests/test_crash.py: write an artifact, get SIGKILLed at a random point of it.

Run as ``python -m tests.crash_driver KIND ROOT KILLS SEED``. ``ROOT/refA`` and ``ROOT/refB``
get the old artifact (A) and the new one (B) made whole; a calibration run counts the lines
B's writer executes in the file-writing code (``rnnx/atomic.py``: temporaries, fsyncs,
renames, the commit, the cleanup). Each round folder ``ROOT/r<i>`` starts as a copy of A;
B's writer then runs once up to its first file-writing line and forks one writer per round
there (the work before, such as an export's tracing, is done once): each moves into its
round's folder (the writers use relative paths) and is killed with SIGKILL at its own
random line. The driver forks its writers before any torch/onnxruntime work happens in it;
the test process checks the folders afterwards.

Prints one JSON line: {"kills": n, "rounds": n, "lines": n}.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import rnnx.atomic

KINDS = ("export", "quantize", "triton", "state")


def _ops(kind: str, root: Path) -> tuple[Callable[[Path], None], Callable[[Path], None]]:
    """(write A into a folder, write B into a folder) for ``kind``."""
    if kind == "state":
        import numpy as np

        from rnnx.runtime.state_io import save_state_file

        def state(seed: int) -> Callable[[Path], None]:
            rng = np.random.default_rng(seed)
            arrays = {
                "h": rng.standard_normal((2, 1, 64)).astype(np.float32),
                "c": rng.standard_normal((2, 1, 64)).astype(np.float32),
            }
            return lambda folder: save_state_file(folder / "s.npz", arrays) and None

        return state(1), state(2)
    if kind == "export":

        def export(seed: int) -> Callable[[Path], None]:
            def run(folder: Path) -> None:
                import torch

                from rnnx.exporter import export_onnx
                from tests.zoo import TINY, example_input

                torch.set_num_threads(1)
                torch.manual_seed(seed)
                model = TINY["lstm-1l"]()
                for p in model.parameters():
                    torch.nn.init.normal_(p, std=0.3)
                export_onnx(model, folder / "m.onnx", example_input=example_input(model, 2, 5), strategy="scan")

            return run

        return export(1), export(2)
    sources = root / "sources"
    if kind == "quantize":

        def quant(source: str, precision: str) -> Callable[[Path], None]:
            def run(folder: Path) -> None:
                from rnnx.onnx_tools.quantize import quantize

                quantize(sources / source, folder / "q.onnx", precision=precision)

            return run

        return quant("a.onnx", "int8"), quant("b.onnx", "fp16")

    def triton(source: str) -> Callable[[Path], None]:
        def run(folder: Path) -> None:
            from rnnx.onnx_tools.triton import TritonConfig, export_triton

            export_triton(sources / source, folder / "repo", TritonConfig(name="m"))

        return run

    return triton("a.onnx"), triton("b.onnx")


def _preload(kind: str) -> None:
    """Import what the writers use once, here, so each forked writer starts at once."""
    if kind == "export":
        import torch  # noqa: F401

        import rnnx.exporter  # noqa: F401
        import tests.zoo  # noqa: F401
    elif kind == "quantize":
        import rnnx.onnx_tools.quantize  # noqa: F401
    elif kind == "triton":
        import rnnx.onnx_tools.triton  # noqa: F401


def _trace_atomic(on_line: Callable[[], None]) -> None:
    """Call ``on_line`` at every line executed in rnnx/atomic.py (this thread and new ones)."""
    target = rnnx.atomic.__file__

    def local(frame, event, arg):  # noqa: ANN001, ANN202 - sys.settrace's signature
        if event == "line":
            on_line()
        return local

    def calls(frame, event, arg):  # noqa: ANN001, ANN202
        return local if frame.f_code.co_filename == target else None

    sys.settrace(calls)
    threading.settrace(calls)


def _status(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _forked(work: Callable[[], None]) -> int:
    """Run ``work`` in a forked child; its wait status (minus the signal number, or the exit code)."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            work()
        except BaseException:  # noqa: BLE001 - reported through the exit code
            import traceback

            traceback.print_exc()
            code = 3
        os._exit(code)
    return _status(pid)


def _in(folder: Path, make: Callable[[Path], None]) -> Callable[[], None]:
    """``make`` run inside ``folder`` with a relative path (so a fork can move it elsewhere)."""

    def work() -> None:
        os.chdir(folder)
        make(Path("."))

    return work


def main(kind: str, root: Path, kills: int, seed: int) -> dict[str, int]:
    _preload(kind)
    make_a, make_b = _ops(kind, root)
    for name, make in (("refA", make_a), ("refB", make_b)):
        (root / name).mkdir()
        if _forked(_in(root / name, make)) != 0:
            raise SystemExit(f"making {name} failed")
    shutil.copytree(root / "refA", root / "calibration")
    count_file = root / "lines.txt"

    def count() -> None:
        counted = [0]

        def tick() -> None:
            counted[0] += 1

        _trace_atomic(tick)
        _in(root / "calibration", make_b)()
        sys.settrace(None)
        count_file.write_text(str(counted[0]))

    if _forked(count) != 0:
        raise SystemExit("calibration failed")
    lines = int(count_file.read_text())
    rng = random.Random(seed)
    kill_at = [rng.randint(1, lines) for _ in range(kills)]
    for r in range(kills):
        shutil.copytree(root / "refA", root / f"r{r}")  # the old artifact, as A's writer left it
    shutil.copytree(root / "refA", root / "fan")
    result = root / "result.json"

    def fan_out() -> None:
        """B's writer runs once up to its first file-writing line, then forks one writer per
        round there: each moves to its round's folder and is killed at its own line."""
        counted = [0]
        state = {"child": False, "kill": 0}

        def tick() -> None:
            counted[0] += 1
            if state["child"]:
                if counted[0] >= state["kill"]:
                    os.kill(os.getpid(), signal.SIGKILL)
                return
            statuses = []
            for r in range(kills):
                pid = os.fork()
                if pid == 0:
                    os.chdir(root / f"r{r}")
                    state.update(child=True, kill=kill_at[r])
                    if counted[0] >= kill_at[r]:
                        os.kill(os.getpid(), signal.SIGKILL)
                    return  # on with B's writer, in this round's folder
                statuses.append(_status(pid))
            result.write_text(json.dumps(statuses))
            os._exit(0)

        _trace_atomic(tick)
        _in(root / "fan", make_b)()

    if _forked(fan_out) != 0:
        raise SystemExit("the fan-out writer failed")
    statuses = json.loads(result.read_text())
    for r, status in enumerate(statuses):
        if status == -signal.SIGKILL:
            (root / f"r{r}" / "killed").write_text(str(kill_at[r]))
        elif status != 0:
            raise SystemExit(f"round {r}: the new artifact's writer failed ({status})")
    return {"kills": sum(s == -signal.SIGKILL for s in statuses), "rounds": kills, "lines": lines}


if __name__ == "__main__":
    kind_, root_, kills_, seed_ = sys.argv[1:5]
    print(json.dumps(main(kind_, Path(root_), int(kills_), int(seed_))))
