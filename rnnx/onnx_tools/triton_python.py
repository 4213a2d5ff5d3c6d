"""The python flavour of a Triton repository: rnnx's own runtime inside Triton's python backend.

``export_triton(..., backend="python")`` (``rnnx export --format triton --triton-backend
python``) writes::

    REPO/<name>/config.pbtxt          backend "python", max_batch_size, sequence_batching (oldest
                                      or direct, START/READY/END controls, no implicit state),
                                      instance_group: the same I/O names as the onnxruntime flavour
    REPO/<name>/1/model.py            imports rnnx.runtime.triton_backend.TritonPythonModel
    REPO/<name>/1/<model>.onnx        the rnnx export, unchanged (its step graph beside it)

The model keeps each sequence's state itself (one StreamPool per instance, see
:mod:`rnnx.runtime.triton_backend`): Triton's implicit state does nothing on the python
backend. Before anything is written, that logic is run on the file the way Triton's
sequence batcher drives it and compared with a StreamingSession per sequence. The folder
appears whole or not at all (rnnx.atomic.atomic_dir).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rnnx.atomic import atomic_dir, write_text_atomic
from rnnx.errors import ConfigError, NotStreamableError, ParityError
from rnnx.onnx_tools.compare import BATCHED_FP32_ATOL, check_close, resolve_tolerance
from rnnx.onnx_tools.spec_io import read_spec
from rnnx.runtime import StreamingSession
from rnnx.runtime.triton_backend import SequenceRequest, TritonSequences
from rnnx.spec import ModelSpec

CONFIG_FILE = "config.pbtxt"
MODEL_PY = "model.py"
MODEL_PY_TEXT = '''"""Triton python-backend model written by rnnx (``--triton-backend python``).

The logic is the installed rnnx's: rnnx.runtime.triton_backend. The server's python needs
``rnnx[cpu]`` and ``numpy<2``.
"""

from rnnx.runtime.triton_backend import TritonPythonModel

__all__ = ["TritonPythonModel"]
'''


def check_servable(spec: ModelSpec) -> None:
    """The python flavour takes requests (1, T, features...) and answers (1, T, out...).

    Raises:
        NotStreamableError: a bidirectional model. ConfigError: batch or time not on axes 0 and 1.
    """
    if not spec.streamable:
        raise NotStreamableError(
            f"{spec.kind} model is not streamable (bidirectional): Triton's "
            f"sequence batcher feeds it one request at a time"
        )
    for io in (spec.input, spec.output):
        if io.batch_axis != 0 or io.time_axis != 1:
            raise ConfigError(
                f"{io.name}: Triton needs (batch, time, ...) on axes 0 and 1, got "
                f"batch_axis {io.batch_axis}, time_axis {io.time_axis} in shape {list(io.shape)}"
            )


def random_steps(spec: ModelSpec, steps: int, rng: np.random.Generator) -> np.ndarray:
    """(1, steps, features...) of the input's dtype (token ids below the contract's vocabulary).

    One request's data in both Triton flavours' checks.
    """
    shape = (1, steps, *spec.input.feature_shape)
    if np.dtype(spec.input.dtype).kind in "iu":
        return rng.integers(0, spec.input.vocab_size or 2, size=shape).astype(spec.input.dtype)
    return rng.standard_normal(shape).astype(spec.input.dtype)


def verify_python(path: str | os.PathLike, *, seed: int = 0) -> float:
    """Drive model.py's logic on ``path`` as Triton's batcher does; compare with StreamingSession.

    Four sequences of requests of 1 to 3 steps share ``execute()`` calls with an empty slot
    (READY=0); each one's outputs must equal a StreamingSession's on the same requests
    (``step`` for one step, ``feed`` for more) exactly, or within 1e-6 where onnxruntime
    rounds a batch differently (LSTM projections). A reduced-precision file is judged by its
    precision's tolerance: int8 dynamic quantization computes the activation scale over the
    whole batch, so a sequence's outputs depend on the sequences batched with it.

    Returns:
        The worst absolute difference.

    Raises:
        ParityError: a sequence differs by more than that.
    """
    spec = read_spec(path)
    atol = (
        BATCHED_FP32_ATOL
        if spec.precision == "fp32"
        else resolve_tolerance(spec.kind, None, None, spec.precision)[0].atol
    )
    rng = np.random.default_rng(seed)
    cuts = {1: (1, 1, 2, 1), 2: (3, 1), 3: (1, 1, 1, 1, 1), 4: (2,)}
    pieces = {cid: [random_steps(spec, n, rng) for n in c] for cid, c in cuts.items()}
    got: dict[int, list[np.ndarray]] = {cid: [] for cid in cuts}
    seqs = TritonSequences(path, max_batch=len(cuts))
    try:
        for t in range(max(len(c) for c in cuts.values())):
            live = [cid for cid in cuts if t < len(cuts[cid])]
            reqs = [SequenceRequest(cid, t == 0, True, t == len(cuts[cid]) - 1, pieces[cid][t]) for cid in live]
            out = seqs.execute([SequenceRequest(0, False, False, False, random_steps(spec, 1, rng)), *reqs])
            for cid, y in zip(live, out[1:], strict=True):
                if not isinstance(y, np.ndarray):
                    raise ParityError(f"sequence {cid}: the python backend's model failed: {y}")
                got[cid].append(y)
    finally:
        seqs.close()
    worst = 0.0
    for cid, ps in pieces.items():
        with StreamingSession(path) as sess:
            want = [sess.step(p[:, 0])[:, None] if p.shape[1] == 1 else sess.feed(p) for p in ps]
        what = f"python-backend run of sequence {cid} ({spec.precision}) differs from StreamingSession"
        worst = max(worst, check_close(what, np.concatenate(got[cid], axis=1), np.concatenate(want, axis=1), atol))
    return worst


def _copy_export(src: Path, spec: ModelSpec, folder: Path) -> Path:
    """The rnnx export (whose contract is ``spec``) and its step graph (when it has one), copied into ``folder``."""
    shutil.copyfile(src, folder / src.name)
    if spec.step_graph is not None and (src.parent / spec.step_graph.file).is_file():
        shutil.copyfile(src.parent / spec.step_graph.file, folder / spec.step_graph.file)
    return folder / src.name


def write_python_repository(
    source: str | os.PathLike,
    repo: str | os.PathLike,
    name: str,
    version: int,
    config_text: Callable[[ModelSpec, str], str],
    *,
    verify: bool = True,
) -> tuple[Path, ModelSpec, float]:
    """Write ``repo/<name>/`` (config, ``<version>/model.py``, the export); returns (model file, spec, worst).

    ``config_text(spec, model_file_name)`` renders ``config.pbtxt``
    (:func:`rnnx.onnx_tools.triton.config_dict` with backend "python").
    """
    src = Path(source)
    spec = read_spec(src)
    check_servable(spec)
    worst = verify_python(src) if verify else float("nan")
    root = Path(repo)
    with atomic_dir(root / name) as stage:  # config, model.py and files appear together (other versions kept)
        folder = stage / str(version)
        folder.mkdir()
        onnx_path = _copy_export(src, spec, folder)
        write_text_atomic(folder / MODEL_PY, MODEL_PY_TEXT)
        write_text_atomic(stage / CONFIG_FILE, config_text(spec, onnx_path.name))
    return root / name / str(version) / onnx_path.name, spec, worst


__all__ = [
    "CONFIG_FILE",
    "MODEL_PY",
    "MODEL_PY_TEXT",
    "check_servable",
    "random_steps",
    "verify_python",
    "write_python_repository",
]
