"""The step graph: a second, loop-free graph for single steps, written beside the model file.

A model whose graph loops over time with ``Scan`` may carry ``spec.step_graph`` (a
:class:`rnnx.spec.StepGraph`: a file name in the model's folder and its SHA-256). That
file has the model's inputs, outputs and states but runs one step only, without the
loop, which onnxruntime runs faster per step. :func:`open_model_graphs` opens it beside
the main graph when :attr:`RuntimeOptions.step_graph` is on:

- no such field, or the option off: only the main graph is opened;
- the file is missing: one logging WARNING, and single steps run the main graph (it is
  complete: the step graph only speeds steps up);
- the file's SHA-256 differs from the contract's: SpecError (files of two different
  exports, or an altered file);
- its inputs and outputs disagree with the contract (names, dtypes, ranks): SpecError.

Read once: the step graph's bytes are read once (bounded by :func:`step_graph_limit`,
about twice the model file), hashed, and handed to onnxruntime as bytes, so a file swapped
after the check can never run unchecked. A step graph that is not a regular file, or over
the bound, is refused (SpecError) before anything is read.

Both graphs read and write the same state buffers, so steps and chunks of one stream
may alternate. The second onnxruntime session holds the weights a second time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from rnnx.atomic import read_regular_file
from rnnx.errors import ProviderError, SpecError
from rnnx.runtime.backend import Backend, PathLike, TensorInfo, open_backend
from rnnx.runtime.contract import NO_FOREIGN, Contract, ForeignModel, check_against_graph, open_model, ort_dtype
from rnnx.runtime.options import RuntimeOptions
from rnnx.spec import METADATA_KEY, TIME, IOSpec, StepGraph

logger = logging.getLogger(__name__)
STEP_GRAPH_SLACK = 64 << 20  # bytes a step graph may hold beyond twice its model file


@dataclass
class ModelGraphs:
    """An opened model: its main graph, its checked contract and, when used, its step graph."""

    backend: Backend  # the main graph (every call when there is no step graph; chunks and run() otherwise)
    contract: Contract
    step: Backend | None = None  # the step graph's backend, when the runtime uses one
    step_path: Path | None = None  # its file

    def close(self) -> None:
        """Close both backends."""
        self.backend.close()
        if self.step is not None:
            self.step.close()


def step_graph_limit(model: PathLike) -> int:
    """Most bytes the step graph of model file ``model`` may have: twice the model file (it
    holds the same weights, its graph is smaller) plus :data:`STEP_GRAPH_SLACK`."""
    return 2 * os.stat(model).st_size + STEP_GRAPH_SLACK


def read_step_graph(model: PathLike, entry: StepGraph) -> tuple[Path, bytes | None]:
    """Where the model file ``model``'s step graph ``entry`` lies, and its bytes, read once
    (None when there is no such file).

    Raises:
        SpecError: the file is not a regular file (a FIFO is never opened for a blocking
            read), or is larger than :func:`step_graph_limit`; nothing is read then.
    """
    file = Path(model).parent / entry.file
    where = f"{METADATA_KEY}.step_graph: step graph {entry.file} (beside {Path(model).name})"
    why = f" (twice the model file + {STEP_GRAPH_SLACK >> 20} MiB)"
    return file, read_regular_file(file, step_graph_limit(model), where, SpecError, why)


def find_step_graph(model: PathLike, entry: StepGraph) -> tuple[Path, str | None]:
    """Where the model file ``model``'s step graph ``entry`` lies, and the SHA-256 of its bytes
    (None when there is no such file). Usable only when that digest equals ``entry.sha256``.

    Raises:
        SpecError: as :func:`read_step_graph`.
    """
    file, data = read_step_graph(model, entry)
    return file, None if data is None else hashlib.sha256(data).hexdigest()


def open_model_graphs(path: PathLike, options: RuntimeOptions, foreign: ForeignModel = NO_FOREIGN) -> ModelGraphs:
    """Open a model file, read its checked contract and open its step graph when it has one.

    Args: as :func:`rnnx.runtime.contract.open_model`; ``options.step_graph`` says whether
    the step graph is used.

    Raises:
        ModelFileError, SpecError, ProviderError: as ``open_model``; also SpecError when the
        step graph's SHA-256 or inputs/outputs disagree with the contract (every backend
        opened is closed again before the error leaves).
    """
    backend, contract = open_model(path, options, foreign)
    try:
        found = _step_graph_file(Path(path), contract, options)
        step = None if found is None else _open_step(*found, Path(path), backend, contract, options)
    except BaseException:
        backend.close()
        raise
    return ModelGraphs(backend, contract, step, None if found is None else found[0])


def _step_graph_file(model: Path, contract: Contract, options: RuntimeOptions) -> tuple[Path, bytes] | None:
    """The step graph's file and bytes (read once) when the runtime should use it: named,
    wanted, present and unaltered."""
    spec = contract.spec
    declared = None if spec is None or contract.foreign else spec.step_graph
    if declared is None or not options.step_graph:
        return None
    file, data = read_step_graph(model, declared)
    if data is None:
        logger.warning(
            "%s: its step graph %s is missing (expected at %s); single steps run the main "
            "graph (complete, but slower per step)",
            model.name,
            declared.file,
            file,
        )
        return None
    digest = hashlib.sha256(data).hexdigest()
    if digest != declared.sha256:
        raise SpecError(
            f"{METADATA_KEY}.step_graph.sha256: {model.name} expects its step graph {file.name} "
            f"to have SHA-256 {declared.sha256}, got {digest} (the files come from two different "
            f"exports, or one was altered); re-export the model to write both files again, or "
            f"open it with step_graph=False to run every call on {model.name}"
        )
    return file, data


def _open_step(
    file: Path, data: bytes, model: Path, main: Backend, contract: Contract, options: RuntimeOptions
) -> Backend:
    """Open the step graph (the bytes that were hashed) with the main graph's options and
    check it against the contract."""
    spec = contract.spec
    assert spec is not None  # _step_graph_file returned a file: the contract came from a spec
    step = open_backend(file, options, precision=spec.precision, data=data)
    try:
        where = f"step graph {file.name} (beside {model.name}) disagrees with its contract"
        _check_step_graph(step, main, contract, where)
    except BaseException:
        step.close()
        raise
    return step


def _free_time(infos: dict[str, TensorInfo], io: IOSpec) -> None:
    """Let a step graph fix the data's time axis at 1 (it runs one step): read it as ``time``."""
    t = infos.get(io.name)
    if t is None or io.time_axis is None or len(t.shape) <= io.time_axis or t.shape[io.time_axis] != 1:
        return
    shape = list(t.shape)
    shape[io.time_axis] = TIME
    infos[io.name] = dataclasses.replace(t, shape=tuple(shape))


def _check_step_graph(step: Backend, main: Backend, contract: Contract, where: str) -> None:
    """SpecError unless the step graph takes and returns what the contract says, on the main graph's device."""
    spec = contract.spec
    assert spec is not None
    if (step.device, step.device_id) != (main.device, main.device_id):
        raise ProviderError(
            f"{where}: expected it on the main graph's device {main.device}:{main.device_id} "
            f"(the state buffers live there), got {step.device}:{step.device_id}"
        )
    inputs = {t.name: t for t in step.inputs()}
    outputs = {t.name: t for t in step.outputs()}
    _free_time(inputs, spec.input)
    _free_time(outputs, spec.output)
    try:
        check_against_graph(spec, inputs, outputs)
    except SpecError as e:
        raise SpecError(f"{where}: {e}; re-export the model, or open it with step_graph=False") from e
    main_inputs = {t.name: t for t in main.inputs()}
    if set(inputs) != set(main_inputs):  # an input the runtime would never feed, or a constant it lacks
        raise SpecError(
            f"{where}: expected the main graph's inputs {sorted(main_inputs)}, got {sorted(inputs)}; "
            f"re-export the model, or open it with step_graph=False"
        )
    for name in contract.constants:  # fed to both graphs
        if ort_dtype(inputs[name], name) != ort_dtype(main_inputs[name], name):
            raise SpecError(
                f"{where}: input {name!r}: expected dtype {main_inputs[name].type_str} (the main "
                f"graph's), got {inputs[name].type_str}"
            )
