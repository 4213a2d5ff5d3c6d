"""The pool's batched step engine: padded subset sizes, bindings reused across batch sizes."""

from __future__ import annotations

import numpy as np

from rnnx.runtime import StreamPool
from rnnx.runtime.batch_engine import EXACT_UP_TO, MAX_PLANS, padded
from tests.runtime.conftest import reference, sequence


def test_padded_sizes_waste_at_most_an_eighth_and_stay_few():
    sizes = [padded(n) for n in range(1, 65_537)]
    assert sizes[:EXACT_UP_TO] == list(range(1, EXACT_UP_TO + 1))
    assert all(n <= m <= n + n // 8 for n, m in zip(range(1, 65_537), sizes))
    assert sizes == sorted(sizes) and all(padded(m) == m for m in sizes)  # a grid: padding is idempotent
    assert len(set(sizes)) < MAX_PLANS  # every size of the largest max_batch fits the binding cache


GRID = [*range(18, 33, 2), 36, 40]  # the sizes subsets of 17..40 streams run at


def test_subsets_of_varying_sizes_match_the_model_and_reuse_bindings(onnx_file):
    """Subsets of 17..40 of 40 streams run padded (18, 20, ... 40 rows); padding rows never leak."""
    path, model = onnx_file("lstm-2l")
    n, steps = 40, 12
    xs = sequence(model, n, steps)  # (40, T, F)
    rng = np.random.default_rng(0)
    done = [0] * n
    got: list[list[np.ndarray]] = [[] for _ in range(n)]
    with StreamPool(path, capacity=n) as pool:
        for i in range(n):
            pool.open(i)
        bound, sizes, bind = [], set(), pool.backend.bind  # every binding the pool makes, counted
        pool.backend.bind = lambda ins, outs: bound.append(1) or bind(ins, outs)
        for size in [17, 39, 23, 31, 40, 19, 26, 33, 21, 37, 29, 40, 18, 35, 25]:
            ids = [int(i) for i in rng.permutation(n) if done[i] < steps][:size]
            sizes.add(min(g for g in GRID if g >= len(ids)))
            ys = pool.step_many({i: xs[i, done[i]] for i in ids})
            for i in ids:
                got[i].append(ys[i])
                done[i] += 1
        assert len(bound) == len(sizes) < 14  # one binding per padded size, made once and reused
    assert min(done) > 0
    want = reference(model, xs)  # (40, T, out): every stream's whole sequence
    for i in range(n):
        np.testing.assert_allclose(np.stack(got[i]), want[i, : done[i]], atol=1e-5)
