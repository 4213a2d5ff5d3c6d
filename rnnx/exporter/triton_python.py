"""Triton repositories that run rnnx's own runtime in Triton's python backend.

``export_triton(..., backend="python")`` (``rnnx export --format triton --triton-backend
python``) writes::

    REPO/<name>/config.pbtxt          backend "python", max_batch_size, sequence_batching (oldest
                                      or direct, START/READY/END controls, no implicit state),
                                      instance_group: the same I/O names as the onnxruntime flavour
    REPO/<name>/1/model.py            imports rnnx.runtime.triton_backend.TritonPythonModel
    REPO/<name>/1/<model>.onnx        the rnnx export, unchanged (its step graph beside it)

The model keeps each sequence's state itself (one StreamPool per instance, see
:mod:`rnnx.runtime.triton_backend`): Triton's implicit state does nothing on the python
backend. The folder appears whole or not at all (written beside, then renamed into place).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnx.errors import ConfigError, NotStreamableError
from rnnx.runtime.triton_backend import MODEL_FILE, PARAMETER_MODEL
from rnnx.spec import ModelSpec

CONFIG_FILE = "config.pbtxt"
MODEL_PY = "model.py"
PYTHON_CONTROLS = ("START", "READY", "END")  # what model.py needs to keep the state itself
MODEL_PY_TEXT = '''"""Triton python-backend model written by rnnx (``--triton-backend python``).

The logic is the installed rnnx's: rnnx.runtime.triton_backend. The server's python needs
``rnnx[cpu]`` and ``numpy<2``.
"""

from rnnx.runtime.triton_backend import TritonPythonModel

__all__ = ["TritonPythonModel"]
'''


@dataclass(frozen=True)
class PythonRepository:
    """What :func:`export_triton_python` wrote."""

    model_dir: Path  # REPO/<name>
    config_path: Path  # REPO/<name>/config.pbtxt
    onnx_path: Path  # REPO/<name>/<version>/<model>.onnx, the rnnx export
    model_py: Path  # REPO/<name>/<version>/model.py
    spec: ModelSpec  # the served file's contract (unchanged)


def python_config_dict(spec: ModelSpec, cfg: Any, model_file: str = MODEL_FILE) -> dict[str, Any]:
    """``config.pbtxt`` of the python flavour: the onnxruntime flavour's, less the implicit state."""
    from rnnx.exporter.triton import config_dict

    controls = tuple(dict.fromkeys((*PYTHON_CONTROLS, *cfg.controls)))
    d = config_dict(spec, _with(cfg, controls=controls))
    d["backend"] = "python"
    del d["sequence_batching"]["state"]
    if model_file != MODEL_FILE:
        d["parameters"] = [{"key": PARAMETER_MODEL, "value": {"string_value": model_file}}]
    return d


def _with(cfg: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(cfg, **changes)


def check_servable(spec: ModelSpec) -> None:
    """The python flavour takes requests (1, T, features...) and answers (1, T, out...).

    Raises:
        NotStreamableError: a bidirectional model. ConfigError: batch or time not on axes 0 and 1.
    """
    if not spec.streamable:
        raise NotStreamableError(f"{spec.kind} model is not streamable (bidirectional): Triton's "
                                 f"sequence batcher feeds it one request at a time")
    for io in (spec.input, spec.output):
        if io.batch_axis != 0 or io.time_axis != 1:
            raise ConfigError(f"{io.name}: Triton needs (batch, time, ...) on axes 0 and 1, got "
                              f"batch_axis {io.batch_axis}, time_axis {io.time_axis} in shape {list(io.shape)}")


def _source_files(source: Any, folder: Path, opset: int) -> tuple[Path, ModelSpec]:
    """The rnnx export (and its step graph) in ``folder``: copied from a file, or exported."""
    from rnnx.exporter.spec_io import read_spec

    if isinstance(source, (str, os.PathLike)):
        src = Path(source)
        spec = read_spec(src)
        shutil.copyfile(src, folder / src.name)
        if spec.step_graph is not None and (src.parent / spec.step_graph.file).is_file():
            shutil.copyfile(src.parent / spec.step_graph.file, folder / spec.step_graph.file)
        return folder / src.name, spec
    from rnnx.exporter.onnx_export import export_onnx

    result = export_onnx(source, folder / MODEL_FILE, opset=opset)
    return result.path, result.spec


def _replace_folder(new: Path, final: Path) -> None:
    """Put ``new`` at ``final`` by renames: the old folder, if any, goes only once ``new`` is ready."""
    if final.is_symlink() or (final.exists() and not final.is_dir()):
        raise ConfigError(f"{final}: expected a model folder or nothing, found something else; not replaced")
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        os.rename(final, old / final.name)
    os.rename(new, final)
    if old is not None:
        shutil.rmtree(old)


def export_triton_python(source: Any, repo: str | os.PathLike, config: Any = None, *,
                         opset: int = 17) -> PythonRepository:
    """Write a python-backend Triton repository serving ``source`` with rnnx.runtime.

    Args:
        source: an ``.onnx`` file exported by rnnx, or a contract module (exported first).
        repo: the repository folder; ``repo/<config.name>/`` is (re)written as a whole.
        config: a :class:`~rnnx.exporter.triton.TritonConfig` (defaults when None); START,
            READY and END are always among the controls (the model needs them).
        opset: ONNX opset when ``source`` is a module.

    Raises:
        ConfigError: an invalid option or a model whose batch/time axes are not 0 and 1.
        NotStreamableError: a bidirectional model.
    """
    from rnnx.exporter.triton import TritonConfig, to_pbtxt

    cfg = (config or TritonConfig()).validate()
    root = Path(repo)
    root.mkdir(parents=True, exist_ok=True)
    final = root / cfg.name
    with tempfile.TemporaryDirectory(prefix=f".{cfg.name}.new-", dir=root) as tmp:
        stage = Path(tmp) / cfg.name
        version = stage / str(cfg.version)
        version.mkdir(parents=True)
        onnx_path, spec = _source_files(source, version, opset)
        check_servable(spec)
        (version / MODEL_PY).write_text(MODEL_PY_TEXT)
        (stage / CONFIG_FILE).write_text(to_pbtxt(python_config_dict(spec, cfg, onnx_path.name)) + "\n")
        _replace_folder(stage, final)
    version_dir = final / str(cfg.version)
    return PythonRepository(final, final / CONFIG_FILE, version_dir / onnx_path.name, version_dir / MODEL_PY, spec)


__all__ = ["PYTHON_CONTROLS", "PythonRepository", "check_servable", "export_triton_python",
           "python_config_dict"]
