"""Drive a served model the way a user's client does, and the reference it must equal."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from rnnx.onnx_tools.spec_io import read_spec
from rnnx.runtime import StreamingSession
from rnnx.spec import TRITON_DTYPES

PROTOCOLS = {"grpc": grpcclient, "http": httpclient}


@dataclass(frozen=True)
class StreamedSequence:
    """One sequence: its id, its whole input (1, T, F...) and how it is cut into requests."""

    sid: int
    x: np.ndarray  # (1, T, features...)
    chunks: tuple[int, ...]  # request lengths, summing to T

    def pieces(self) -> list[np.ndarray]:
        bounds = np.cumsum((0, *self.chunks))
        return [self.x[:, a:b] for a, b in itertools.pairwise(bounds)]


def random_input(path: Path, steps: int, rng: np.random.Generator) -> np.ndarray:
    """(1, steps, features...) of the model's input dtype (token ids below the vocabulary)."""
    spec = read_spec(path)
    feature = spec.input.feature_shape
    if np.dtype(spec.input.dtype).kind in "iu":
        vocab = int(spec.config.get("vocab_size") or 2)
        return rng.integers(0, vocab, size=(1, steps, *feature)).astype(spec.input.dtype)
    return rng.standard_normal((1, steps, *feature)).astype(spec.input.dtype)


def sequences(path: Path, n: int, *, chunked: bool, seed: int = 0, first_id: int = 1) -> list[StreamedSequence]:
    """``n`` sequences of different lengths (3 to 3 + 2n steps); chunks of 1 to 4 steps when ``chunked``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        steps = 3 + 2 * i
        cuts: list[int] = []
        while sum(cuts) < steps:
            cuts.append(min(int(rng.integers(1, 5)) if chunked else 1, steps - sum(cuts)))
        out.append(StreamedSequence(first_id + i, random_input(path, steps, rng), tuple(cuts)))
    return out


def reference(path: Path, pieces: Sequence[np.ndarray]) -> list[np.ndarray]:
    """StreamingSession on the same file: step() for one-step pieces, feed() for chunks."""
    with StreamingSession(path) as sess:
        return [sess.step(p[:, 0])[:, None] if p.shape[1] == 1 else sess.feed(p) for p in pieces]


def infer(
    client: Any,
    protocol: str,
    model: str,
    x: np.ndarray,
    sid: int,
    *,
    start: bool,
    end: bool,
    input_name: str = "x",
    output_name: str = "y",
) -> np.ndarray:
    """One request of sequence ``sid``; returns the output (1, T, out...)."""
    mod = PROTOCOLS[protocol]
    inp = mod.InferInput(input_name, list(x.shape), TRITON_DTYPES[x.dtype.name].removeprefix("TYPE_"))
    inp.set_data_from_numpy(x)
    result = client.infer(model, [inp], sequence_id=sid, sequence_start=start, sequence_end=end)
    return result.as_numpy(output_name)


def make_client(protocol: str, url: str) -> Any:
    return PROTOCOLS[protocol].InferenceServerClient(url)


def run_sequence(protocol: str, url: str, model: str, seq: StreamedSequence) -> list[np.ndarray]:
    """Send one sequence, request by request (START on the first, END on the last)."""
    client = make_client(protocol, url)
    pieces = seq.pieces()
    try:
        return [
            infer(client, protocol, model, p, seq.sid, start=k == 0, end=k == len(pieces) - 1)
            for k, p in enumerate(pieces)
        ]
    finally:
        client.close()


def max_abs_diff(got: Sequence[np.ndarray], want: Sequence[np.ndarray]) -> float:
    assert [g.shape for g in got] == [w.shape for w in want]
    return max(
        float(np.max(np.abs(g.astype(np.float64) - w.astype(np.float64)))) for g, w in zip(got, want, strict=True)
    )
