"""Time the ONNX export itself per model kind: the legacy path (auto while torch ships the
TorchScript-based exporter) against the TorchScript-free path (``strategy="dynamo"``).

Each model is exported ``--rounds`` times per path in alternating order (the best round
counts), with the parity probe each candidate gets (what ``rnnx export`` pays before its
own check) and no step graph; the strategy each path kept is reported beside its time.

    python benchmarks/bench_export_time.py [--rounds 2] [--only lstm] [--json out.json]

Prints one table and the dynamo/legacy ratio per model; not a test.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

import rnnx
from rnnx.exporter import export_onnx
from rnnx.exporter.seq2seq_export import export_seq2seq
from rnnx.models import build
from rnnx.table import render

PATHS = {"legacy": "auto", "dynamo": "dynamo"}  # label -> strategy


class HandLSTMCell(nn.Module):
    """A tutorial's hand-written cell: forward(x, h, c) -> (h, c)."""

    def __init__(self, features: int = 16, hidden: int = 64) -> None:
        super().__init__()
        self.gates = nn.Linear(features + hidden, 4 * hidden)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i, f, g, o = self.gates(torch.cat([x, h], 1)).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


MODELS: dict[str, Callable[[], nn.Module]] = {
    "lstm 2l 16->64": lambda: build("lstm", input_size=16, hidden_size=64, num_layers=2, output_size=1),
    "gru 2l 16->64": lambda: build("gru", input_size=16, hidden_size=64, num_layers=2, output_size=1),
    "rnn 1l 16->64": lambda: build("rnn", input_size=16, hidden_size=64, output_size=1),
    "lstm proj 2l": lambda: build("lstm", input_size=16, hidden_size=64, num_layers=2, proj_size=16, output_size=1),
    "convlstm 8x8": lambda: build("convlstm", input_size=1, hidden_size=8, image_size=(8, 8), output_size=1),
    "wrap hand cell": lambda: rnnx.wrap(HandLSTMCell(), [("batch", 64), ("batch", 64)], step=True),
    "seq2seq": lambda: build("seq2seq", input_size=4, hidden_size=16, horizon=3, window=6),
}


@dataclass(frozen=True)
class Row:
    """One model, one path: seconds to build the graph."""

    model: str  # model label
    path: str  # "legacy" or "dynamo"
    strategy: str  # the strategy that built the kept graph
    best_s: float  # best round
    rounds: int  # rounds timed


def _export_once(make: Callable[[], nn.Module], strategy: str, out: Path) -> tuple[float, str]:
    model = make()
    start = time.perf_counter()
    if getattr(model, "kind", None) == "seq2seq":
        export_seq2seq(model, out, check=False, strategy=strategy)
        kept = "trace" if strategy == "auto" else strategy
    else:
        example = torch.randn(2, 5, 16) if isinstance(getattr(model, "module", None), HandLSTMCell) else None
        kept = export_onnx(model, out / "m.onnx", strategy=strategy, step_graph=False, example_input=example).strategy
    return time.perf_counter() - start, kept


def measure(label: str, make: Callable[[], nn.Module], rounds: int, tmp: Path) -> list[Row]:
    times: dict[str, list[float]] = {p: [] for p in PATHS}
    kept: dict[str, str] = {}
    for r in range(rounds):
        for path, strategy in PATHS.items() if r % 2 == 0 else reversed(PATHS.items()):
            seconds, kept[path] = _export_once(make, strategy, tmp / f"{label}-{path}-{r}")
            times[path].append(seconds)
    return [Row(label, p, kept[p], min(t), len(t)) for p, t in times.items()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--only", help="a model label (see MODELS)")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    models = {k: v for k, v in MODELS.items() if args.only in (None, k)}
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, make in models.items():
            rows += measure(label, make, args.rounds, Path(tmp))
    by = {(r.model, r.path): r for r in rows}
    print(
        render(
            ("model", "path", "kept strategy", "best s"),
            [(r.model, r.path, r.strategy, f"{r.best_s:.2f}") for r in rows],
        )
    )
    ratios = {m: by[(m, "dynamo")].best_s / by[(m, "legacy")].best_s for m in models}
    print("\ndynamo / legacy export time: " + ", ".join(f"{m} {v:.1f}x" for m, v in ratios.items()))
    if args.json:
        env = {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine()}
        Path(args.json).write_text(
            json.dumps({"env": env, "rows": [asdict(r) for r in rows], "ratios": ratios}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
