"""The backend seam: the one interface StreamingSession and StreamPool run a graph through.

A backend opens a model file, describes its inputs, outputs and metadata, allocates
state buffers on its device, binds buffers to a graph call once, runs bound or plain
calls, and closes. :class:`OrtBackend` is the onnxruntime implementation (IO binding;
on CUDA the state buffers live on the provider's device). Another engine is one more
class with these methods, not a fork of the session and pool.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, Union

import numpy as np
import onnxruntime as ort

from rnnx.atomic import path_kind
from rnnx.errors import ModelFileError
from rnnx.runtime.options import OPTIMIZATION, RuntimeOptions
from rnnx.runtime.precision import CONFIG, MAX_LEVEL, file_precision
from rnnx.runtime.providers import CUDA, check_session_providers, resolve_providers
from rnnx.runtime.tensor_info import Dim, TensorInfo
from rnnx.spec import ORT_DTYPES

logger = logging.getLogger(__name__)
PathLike = Union[str, "os.PathLike[str]"]
OV = ort.OrtValue


class Backend(Protocol):
    """What the runtime needs from an inference engine.

    Buffers: ``alloc`` returns a device buffer handle (a numpy array on the host
    device); ``bind`` takes numpy arrays (host memory, bound without copying) or such
    handles; ``None`` as an output lets the backend allocate it (read with ``fetch``).
    """

    device: str  # "cpu" or "cuda"
    device_id: int  # index of the device the state buffers live on
    run_bound: Callable[[Any], None]  # run a binding made by bind(); the per-step fast path

    def inputs(self) -> list[TensorInfo]: ...
    def outputs(self) -> list[TensorInfo]: ...
    def metadata(self) -> dict[str, str]: ...
    def alloc(self, shape: Sequence[int], dtype: np.dtype) -> Any: ...
    def read(self, buf: Any) -> np.ndarray: ...
    def write(self, buf: Any, value: np.ndarray) -> None: ...
    def bind(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> Any: ...
    def fetch(self, bound: Any) -> list[np.ndarray]: ...
    def run(self, outputs: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]: ...
    def close(self) -> None: ...


_LEVELS = {
    "off": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_SEVERITY = {"verbose": 0, "info": 1, "warning": 2, "error": 3, "fatal": 4}
TOOL_OPTIONS = RuntimeOptions(threads=1, log_level="fatal")  # tools' probes: tiny graphs, errors as exceptions


def session_options(options: RuntimeOptions, precision: str = "fp32") -> ort.SessionOptions:
    """The ``onnxruntime.SessionOptions`` for ``options`` and a graph of ``precision``: the one place.

    A precision that needs it lowers the optimisation level (fp16: onnxruntime's
    NchwcTransformer crashes on fp16 graphs above "extended") and adds session config
    entries (int8: ``session.disable_quant_qdq``); see :mod:`rnnx.runtime.precision`.
    """
    so = ort.SessionOptions()
    if options.threads is not None:
        so.intra_op_num_threads = options.threads
    so.log_severity_level = _SEVERITY[options.log_level]
    level, cap = options.optimization, MAX_LEVEL.get(precision)
    if cap is not None and OPTIMIZATION.index(level) > OPTIMIZATION.index(cap):
        logger.info(
            "%s graph: optimisation level lowered from %s to %s (onnxruntime's NchwcTransformer "
            "crashes on fp16 graphs)",
            precision,
            level,
            cap,
        )
        level = cap
    so.graph_optimization_level = _LEVELS[level]
    for key, value in (*CONFIG.get(precision, {}).items(), *options.session_config):
        so.add_session_config_entry(key, value)
    return so


def convert_to_ort(model: PathLike | bytes, dst: PathLike, precision: str = "fp32") -> None:
    """Save ``model`` in onnxruntime's ``.ort`` format at ``dst``, optimised at the *basic* level.

    Raises:
        RuntimeError: onnxruntime cannot load or convert the graph (its own message).
    """
    so = session_options(
        RuntimeOptions(optimization="basic", log_level="fatal", session_config=(("session.save_model_format", "ORT"),)),
        precision,
    )
    so.optimized_model_filepath = os.fspath(dst)
    try:
        ort.InferenceSession(
            model if isinstance(model, bytes) else os.fspath(model), so, providers=["CPUExecutionProvider"]
        )
    except Exception as e:  # onnxruntime's own error types
        raise RuntimeError(" ".join(str(e).split())) from None


def _shape(dims: Sequence[Any]) -> tuple[Dim, ...]:
    return tuple(d if (isinstance(d, int) and d >= 0) or isinstance(d, str) else None for d in dims)


def _device_id(session: ort.InferenceSession) -> int:
    """The CUDA device the session runs on (provider option ``device_id``, default 0)."""
    opts = session.get_provider_options().get(CUDA, {})
    try:
        return int(opts.get("device_id", 0))
    except (TypeError, ValueError):
        return 0


class OrtBackend:
    """onnxruntime behind the :class:`Backend` interface, with IO binding.

    Args:
        session: a loaded ``onnxruntime.InferenceSession``.
        requested: the provider list the session was asked for; a provider that
            onnxruntime dropped while building it (CUDA libraries that failed to load)
            raises ProviderError instead of silently running on the CPU.

    Raises:
        ProviderError: a requested provider is not active in ``session``.
    """

    def __init__(self, session: ort.InferenceSession, requested: Sequence[Any]) -> None:
        check_session_providers(requested, session.get_providers())
        self.session: ort.InferenceSession | None = session
        self.device = "cuda" if session.get_providers()[0] == CUDA else "cpu"
        self.device_id = _device_id(session) if self.device == "cuda" else 0
        self.run_bound: Callable[[Any], None]  # the per-step fast path (Backend.run_bound)
        if self.device == "cuda":
            self.run_bound = self._run_bound_cuda
        else:  # no RunOptions: with one, onnxruntime 1.32's wrapper reads its config each call (~30 us)
            self.run_bound = session.run_with_iobinding

    def _run_bound_cuda(self, b: ort.IOBinding) -> None:
        """Run a binding on CUDA: bound host inputs are copied to the device anew each run.

        onnxruntime copies a host input to the device when it is *bound*, not when it
        runs: rebinding the host buffers (and waiting for those copies) is what makes a
        bind-once, write-then-run buffer read its current contents. Host outputs are
        synchronised before they are read.
        """
        for name, arr in b._rnnx_host_inputs:
            b.bind_cpu_input(name, arr)
        b.synchronize_inputs()
        self._live().run_with_iobinding(b)
        b.synchronize_outputs()

    @classmethod
    def open(
        cls, path: PathLike, options: RuntimeOptions, precision: str | None = None, data: bytes | None = None
    ) -> OrtBackend:
        """Load an ONNX file with the options' providers and session options.

        ``precision`` is the graph's precision when the file records none itself (a step
        graph: its model's); None reads it from the file's ``rnnx.spec``. ``data``: the
        file's bytes, already read (and checked) by the caller; onnxruntime loads them
        instead of reading ``path`` again (``path`` then only names the graph in errors).

        Raises:
            ModelFileError: missing, unreadable or non-ONNX file. ProviderError: see providers.
        """
        resolved = resolve_providers(options.providers)
        p = Path(path)
        if data is None and not p.is_file():
            raise ModelFileError(f"model: expected an ONNX file, got {path_kind(p)} at {p}")
        # the file's precision may need options (fp16: see rnnx.runtime.precision)
        so = session_options(options, precision or file_precision(p if data is None else data))
        try:
            sess = ort.InferenceSession(str(p) if data is None else data, sess_options=so, providers=resolved)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelFileError(f"model {p}: not a loadable ONNX file ({first})") from None
        return cls(sess, resolved)

    # -- description -------------------------------------------------------------------
    def _live(self) -> ort.InferenceSession:
        if self.session is None:
            raise RuntimeError("backend is closed")
        return self.session

    def inputs(self) -> list[TensorInfo]:
        return [TensorInfo(i.name, _shape(i.shape), ORT_DTYPES.get(i.type), i.type) for i in self._live().get_inputs()]

    def outputs(self) -> list[TensorInfo]:
        return [TensorInfo(o.name, _shape(o.shape), ORT_DTYPES.get(o.type), o.type) for o in self._live().get_outputs()]

    def metadata(self) -> dict[str, str]:
        return dict(self._live().get_modelmeta().custom_metadata_map)

    # -- buffers -----------------------------------------------------------------------
    def alloc(self, shape: Sequence[int], dtype: np.dtype) -> Any:
        """A zeroed buffer on the session's device: a numpy array on CPU, an OrtValue on CUDA."""
        if self.device == "cpu":
            return np.zeros(tuple(shape), dtype)
        buf = OV.ortvalue_from_shape_and_type(list(shape), np.dtype(dtype), "cuda", self.device_id)
        buf.update_inplace(np.zeros(tuple(shape), dtype))
        return buf

    def read(self, buf: Any) -> np.ndarray:
        """A host copy of a buffer made by :meth:`alloc`."""
        return buf.copy() if isinstance(buf, np.ndarray) else buf.numpy()

    def write(self, buf: Any, value: np.ndarray) -> None:
        """Overwrite a buffer made by :meth:`alloc` (``value`` already has its shape and dtype)."""
        if isinstance(buf, np.ndarray):
            np.copyto(buf, value)
        else:
            buf.update_inplace(np.ascontiguousarray(value))

    # -- calls -------------------------------------------------------------------------
    def bind(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> ort.IOBinding:
        """One IO binding of these buffers; run it with :attr:`run_bound` as often as needed.

        The bound numpy arrays must stay alive and in place as long as the binding is used;
        each run reads their current contents (on CUDA by copying them to the device).
        """
        b = self._live().io_binding()
        if self.device == "cuda":  # re-sent before every run (_run_bound_cuda)
            b._rnnx_host_inputs = [(n, buf) for n, buf in inputs.items() if isinstance(buf, np.ndarray)]
        for name, buf in inputs.items():
            b.bind_ortvalue_input(name, OV.ortvalue_from_numpy(buf) if isinstance(buf, np.ndarray) else buf)
        for name, buf in outputs.items():
            if buf is None:
                b.bind_output(name, "cpu")
            else:
                b.bind_ortvalue_output(name, OV.ortvalue_from_numpy(buf) if isinstance(buf, np.ndarray) else buf)
        return b

    def fetch(self, bound: ort.IOBinding) -> list[np.ndarray]:
        """The outputs of the last run of ``bound``, as host arrays."""
        return [v.numpy() for v in bound.get_outputs()]

    def run(self, outputs: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """A plain call: host arrays in, host arrays out."""
        return self._live().run(list(outputs), dict(feeds))

    def close(self) -> None:
        """Drop the onnxruntime session (its memory is freed once no binding refers to it).

        :attr:`run_bound` holds the native session too, so it is replaced by one that raises.
        """
        self.session = None
        self.run_bound = closed_run


def open_graph(
    model: PathLike | bytes, precision: str | None = None, options: RuntimeOptions = TOOL_OPTIONS
) -> OrtBackend:
    """A backend for a tool's own run of a graph (a path, or its serialized bytes).

    The ONNX tools (parity runners, stateful, Triton checks, the isolated child) open every
    graph here, so a precision's session options apply to them as to the runtime.

    Raises:
        ModelFileError: onnxruntime cannot load the graph.
    """
    if isinstance(model, bytes):
        return OrtBackend.open("graph", options, precision or "fp32", data=model)
    return OrtBackend.open(model, options, precision)


def closed_run(binding: Any) -> None:
    """``run_bound`` of a closed backend (or engine)."""
    raise RuntimeError("backend is closed")


def open_backend(
    path: PathLike, options: RuntimeOptions, precision: str | None = None, data: bytes | None = None
) -> Backend:
    """Open ``path`` on the backend the options select (onnxruntime; a ``.pt2``/``.pte`` step program
    through :mod:`rnnx.runtime.program_backend`, its engine imported only then); ``precision`` and ``data``
    (its bytes, already read): see OrtBackend.open."""
    suffix = Path(path).suffix.lower() if data is None else ""
    if suffix == ".pt2":
        from rnnx.runtime.export_backend import open_pt2

        return open_pt2(Path(path))
    if suffix == ".pte":
        from rnnx.runtime.executorch_backend import open_pte

        return open_pte(Path(path))
    return OrtBackend.open(path, options, precision, data)
