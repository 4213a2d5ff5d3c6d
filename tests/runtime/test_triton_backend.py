"""TritonSequences (the python-backend model's logic) in process: what Triton's batcher sends, answered exactly.

The same logic runs inside a real tritonserver in tests/triton_server/test_python_flavour.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnnx.errors import InputValueError, ShapeError, UnknownStreamError
from rnnx.runtime import StreamingSession
from rnnx.runtime.triton_backend import SequenceRequest, TritonSequences


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def req(cid: int, x, *, start: bool = False, end: bool = False, ready: bool = True) -> SequenceRequest:
    return SequenceRequest(cid, start, ready, end, x)


def _x(rng: np.random.Generator, steps: int, features: int = 5) -> np.ndarray:
    return rng.standard_normal((1, steps, features)).astype(np.float32)


def _ref(path: Path, pieces: list[np.ndarray]) -> list[np.ndarray]:
    with StreamingSession(path) as s:
        return [s.step(p[:, 0])[:, None] if p.shape[1] == 1 else s.feed(p) for p in pieces]


@pytest.fixture
def lstm(onnx_file) -> Path:
    return onnx_file("lstm-2l")[0]


def test_interleaved_sequences_steps_and_chunks_equal_a_session_each(lstm: Path) -> None:
    rng = np.random.default_rng(0)
    cuts = {1: [1, 1, 3, 1], 2: [2, 1, 1], 3: [1, 1, 1, 1, 1], 4: [4]}
    pieces = {cid: [_x(rng, n) for n in c] for cid, c in cuts.items()}
    seqs = TritonSequences(lstm, max_batch=8)
    got: dict[int, list[np.ndarray]] = {cid: [] for cid in cuts}
    for t in range(5):
        live = [cid for cid in cuts if t < len(cuts[cid])]
        batch = [req(cid, pieces[cid][t], start=t == 0, end=t == len(cuts[cid]) - 1) for cid in live]
        batch.insert(1, req(0, _x(rng, 1), ready=False))  # an empty direct slot
        out = seqs.execute(batch)
        assert len(out) == len(batch) and not out[1].any()
        for cid, y in zip(live, out[:1] + out[2:], strict=True):
            got[cid].append(y)
    for cid in cuts:
        want = _ref(lstm, pieces[cid])
        assert all(np.array_equal(g, w) for g, w in zip(got[cid], want, strict=True)), cid
    assert seqs.sequences == []  # every sequence ended
    seqs.close()


def test_start_on_an_open_sequence_resets_it_and_end_closes_it(lstm: Path) -> None:
    rng = np.random.default_rng(1)
    a, b = _x(rng, 1), _x(rng, 1)
    seqs = TritonSequences(lstm)
    seqs.execute([req(5, a, start=True)])
    seqs.execute([req(5, a)])
    (y,) = seqs.execute([req(5, b, start=True, end=True)])
    assert np.array_equal(y, _ref(lstm, [b])[0]) and seqs.sequences == []
    (err,) = seqs.execute([req(5, b)])
    assert isinstance(err, UnknownStreamError) and "sequence 5: not open" in str(err)


def test_a_bad_request_fails_alone_and_leaves_its_state(onnx_file) -> None:
    path = onnx_file("tokens-lstm")[0]
    x = np.array([[[3], [4], [5]]], np.int64)[..., 0]  # (1, 3) token ids
    seqs = TritonSequences(path)
    seqs.execute([req(1, x[:, :1], start=True), req(2, x[:, :1], start=True)])
    bad = np.full((1, 1), 999, np.int64)
    y2, err, y3 = seqs.execute([req(2, x[:, 1:2]), req(1, bad), req(3, x[:, :1], start=True)])
    assert isinstance(err, InputValueError) and str(err).startswith("sequence 1: x: expected token ids")
    (fresh,) = seqs.execute([req(4, bad, start=True)])  # a failed START opens nothing
    assert isinstance(fresh, InputValueError) and 4 not in seqs.sequences
    (short,) = seqs.execute([req(1, x[:, :0])])
    assert isinstance(short, ShapeError) and "x: expected shape (1, T >= 1" in str(short)
    (y1,) = seqs.execute([req(1, x[:, 1:])])  # as if the bad requests never came
    assert np.array_equal(y1, _ref(path, [x[:, :1], x[:, 1:]])[1])
    assert np.array_equal(y2, _ref(path, [x[:, :1], x[:, 1:2]])[1])
    assert np.array_equal(y3, _ref(path, [x[:, :1]])[0])


def test_a_bad_start_on_an_open_sequence_keeps_its_state(onnx_file) -> None:
    path = onnx_file("tokens-lstm")[0]
    x = np.array([[3, 4]], np.int64)
    seqs = TritonSequences(path)
    seqs.execute([req(1, x[:, :1], start=True)])
    (err,) = seqs.execute([req(1, np.full((1, 1), 999, np.int64), start=True)])
    assert isinstance(err, InputValueError)
    (y,) = seqs.execute([req(1, x[:, 1:])])
    assert np.array_equal(y, _ref(path, [x[:, :1], x[:, 1:]])[1])


def test_idle_sequences_are_closed_after_the_timeout(lstm: Path) -> None:
    clock, rng = Clock(), np.random.default_rng(2)
    seqs = TritonSequences(lstm, idle_timeout_us=1_000_000, clock=clock)
    seqs.execute([req(1, _x(rng, 1), start=True), req(2, _x(rng, 1), start=True)])
    clock.now = 0.6
    seqs.execute([req(2, _x(rng, 1))])
    clock.now = 1.2  # 1 idle for 1.2 s, 2 for 0.6 s
    (err,) = seqs.execute([req(1, _x(rng, 1))])
    assert isinstance(err, UnknownStreamError) and "idle longer than" in str(err)
    assert seqs.sequences == [2] and len(seqs.pool) == 1


def test_one_sequence_twice_in_a_batch_keeps_its_order(lstm: Path) -> None:
    rng = np.random.default_rng(3)
    a, b = _x(rng, 1), _x(rng, 1)
    seqs = TritonSequences(lstm)
    ya, yb = seqs.execute([req(1, a, start=True), req(1, b)])
    want = _ref(lstm, [a, b])
    assert np.array_equal(ya, want[0]) and np.array_equal(yb, want[1])


def test_chunks_of_one_length_run_together_and_a_bad_one_fails_alone(onnx_file) -> None:
    path = onnx_file("tokens-lstm")[0]
    rng = np.random.default_rng(4)
    xs = {cid: rng.integers(0, 20, size=(1, 6)).astype(np.int64) for cid in (1, 2, 3)}
    seqs = TritonSequences(path)
    first = seqs.execute([req(cid, x[:, :3], start=True) for cid, x in xs.items()])  # one batch of three
    bad = xs[2][:, 3:].copy()
    bad[0, 1] = 999
    second = seqs.execute([req(1, xs[1][:, 3:]), req(2, bad), req(3, xs[3][:, 3:])])
    assert isinstance(second[1], InputValueError) and str(second[1]).startswith("sequence 2: x:")
    (again,) = seqs.execute([req(2, xs[2][:, 3:])])  # its state was left as it was
    for cid, got in ((1, [first[0], second[0]]), (2, [first[1], again]), (3, [first[2], second[2]])):
        want = _ref(path, [xs[cid][:, :3], xs[cid][:, 3:]])
        assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True)), cid
    assert sorted(seqs.chunk_sessions) == [1, 2, 4]  # sessions by powers of two: 3 chunks (padded to 4), then 2, then 1


@pytest.mark.parametrize("steps", [1, 3], ids=["steps", "chunks"])
def test_a_request_the_batched_call_rejects_fails_alone(lstm: Path, steps: int) -> None:
    """A wrong feature size passes the per-request check and fails inside the batched call: the
    batch is split, the two good sequences are answered as if alone, the bad one keeps its state."""
    rng = np.random.default_rng(5)
    first = {cid: _x(rng, 1) for cid in (1, 2, 3)}
    seqs = TritonSequences(lstm)
    seqs.execute([req(cid, x, start=True) for cid, x in first.items()])
    nxt = {cid: _x(rng, steps) for cid in (1, 2, 3)}
    got = seqs.execute([req(1, nxt[1]), req(2, _x(rng, steps, features=4)), req(3, nxt[3])])
    assert isinstance(got[1], ShapeError) and str(got[1]).startswith("sequence 2:")
    (again,) = seqs.execute([req(2, nxt[2])])  # its state was left as it was
    for cid, y in ((1, got[0]), (2, again), (3, got[2])):
        assert np.array_equal(y, _ref(lstm, [first[cid], nxt[cid]])[1]), cid
