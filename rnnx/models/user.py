"""Load a user's own model from a Python reference (``rnnx export file.py:make``).

A reference is ``path/to/file.py:factory`` or ``package.module:factory``: a callable that
takes no arguments and returns an ``nn.Module`` that follows the rnnx contract (or was
made to with ``rnnx.wrap``). **Loading a reference runs that Python code** with the
rights of the caller, exactly like ``python file.py`` would; only use files you trust.
Weights, by contrast, are loaded without executing anything: safetensors, or a
``state_dict`` read by ``torch.load(weights_only=True)``.

Example::

    model = load_reference("models/forecaster.py:make",
                           weights="forecaster.pt", example_shape=(2, 10, 7))
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import logging
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rnnx.errors import CheckpointError, ConfigError, cause_text

# "file.py:attr" or "pkg.mod:attr" (attr may be dotted: "mod:Class.make")
_REFERENCE = re.compile(
    r"^(?P<source>[^:]+\.py|[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*)"
    r":(?P<attr>[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)$"
)
logger = logging.getLogger(__name__)
_NESTED_KEYS = ("state_dict", "model_state_dict", "model")  # common checkpoint dict layouts


def is_reference(text: str) -> bool:
    """True for ``file.py:factory`` / ``package.module:factory``; False for checkpoint paths."""
    return bool(_REFERENCE.match(text)) and not Path(text).exists()


def load_reference(
    ref: str,
    *,
    weights: str | os.PathLike | None = None,
    example_shape: Sequence[int] | None = None,
    example_dtype: str | None = None,
) -> nn.Module:
    """Import ``ref``, call its factory, load ``weights`` into the module.

    Args:
        ref: ``path/to/file.py:factory`` or ``package.module:factory`` (runs that code).
        weights: optional ``.safetensors`` file, or a ``state_dict`` saved with
            ``torch.save`` (read with ``weights_only=True``; a dict holding it under
            ``state_dict``/``model_state_dict``/``model`` works too).
        example_shape: the batch-first example input shape ``(B, T, F...)``; wins over
            what rnnx reads off the module.
        example_dtype: the example's dtype (``int64`` for token ids); needs example_shape.

    Returns:
        The module in eval mode.

    Raises:
        ConfigError: a malformed reference, a missing file/module/attribute, or a factory
            that does not return an nn.Module.
        CheckpointError: unreadable weights, or weights that do not fit the module.
    """
    match = _REFERENCE.match(ref)
    if not match:
        raise ConfigError(
            f"model: expected a checkpoint, path/to/file.py:factory or package.module:factory, got {ref!r}"
        )
    factory = _resolve(_import(match["source"]), match["attr"], ref)
    if not callable(factory):
        raise ConfigError(f"{ref}: expected a callable returning an nn.Module, got {type(factory).__name__}")
    module = _call_factory(factory, ref)
    if weights is not None:
        load_weights(module, weights)
    module = fit_contract(module, ref)
    if example_shape is not None:
        shape = tuple(int(d) for d in example_shape)
        if len(shape) < 2 or any(d <= 0 for d in shape):
            raise ConfigError(
                f"example_shape: expected positive B,T,F... (at least batch and time), got {','.join(map(str, shape))}"
            )
        setattr(module, "example_shape", shape)  # noqa: B010 - read by rnnx.exporter.contract.example_for
    if example_dtype is not None:
        if example_dtype not in EXAMPLE_DTYPES:
            raise ConfigError(f"example_dtype: expected one of {', '.join(EXAMPLE_DTYPES)}, got {example_dtype!r}")
        if example_shape is None:
            raise ConfigError("--example-dtype: give --example-shape B,T too (token ids: B,T)")
        setattr(module, "example_dtype", example_dtype)  # noqa: B010 - read by contract.shaped_example
    return module.eval()


EXAMPLE_DTYPES = ("float32", "float64", "int64", "int32")  # --example-dtype choices


def _call_factory(factory: Any, ref: str) -> nn.Module:
    """``factory()``, refusing one that needs arguments before calling it."""
    params: list[inspect.Parameter] = []
    try:
        params = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):  # builtins and C callables: just call
        pass
    needed = [
        p.name
        for p in params
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if needed:
        raise ConfigError(
            f"{ref}: expected a factory taking no arguments, got one that needs "
            f"{', '.join(needed)}; add a function that fixes them, e.g. "
            f"def make(): return {ref.rsplit(':', 1)[1]}({', '.join(f'{n}=...' for n in needed)})"
        )
    module = factory()
    if not isinstance(module, nn.Module):
        raise ConfigError(f"{ref}: expected the factory to return a torch nn.Module, got {type(module).__name__}")
    return module


def fit_contract(module: nn.Module, ref: str) -> nn.Module:
    """``module`` if it follows the contract; a module hiding its state, rebuilt exactly.

    Raises:
        ConfigError: anything else, naming the route that fits (rnnx.models.advice).
    """
    if getattr(module, "init_state", None) is not None:
        return module
    from rnnx.models.advice import rebuild_hidden, route_for

    rebuilt = rebuild_hidden(module)
    if rebuilt is not None:
        logger.warning(
            "%s hides its state (forward(x) starts from zeros and drops the final state): "
            "exporting %s instead, which carries it (equal to your forward from zero state: "
            "max |err| %.2g on a probe); to choose yourself, return a module that follows "
            "the contract from the factory",
            type(module).__name__,
            rebuilt.call,
            rebuilt.max_abs_err,
        )
        return rebuilt.model
    route = route_for(module)
    factory = ref.rsplit(":", 1)[1]
    if route.kind == "hidden":
        return _refuse_hidden(module, ref, route.call)
    raise ConfigError(
        f"{ref}: {type(module).__name__} does not follow the rnnx contract (no "
        f"init_state(batch_size)); {route.why}: make {factory}() return {route.call}"
    )


def _refuse_hidden(module: nn.Module, ref: str, call: str) -> nn.Module:
    raise ConfigError(
        f"{ref}: {type(module).__name__}.forward(x) starts its recurrent layer from "
        f"zeros and drops the final state, and does more than head(layer(x)), so "
        f"{call} would not equal it; give forward a state parameter "
        f"(forward(x, state) -> (y, state)) and return rnnx.wrap(model, ...) from the "
        f"factory (the error then names the exact call)"
    )


def load_weights(module: nn.Module, path: str | os.PathLike) -> None:
    """Load a safetensors file or a ``weights_only`` state_dict into ``module`` (strict).

    A module made with ``rnnx.wrap`` also accepts the wrapped module's own state_dict.

    Raises:
        CheckpointError: the file cannot be read, or its keys/shapes do not fit.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such weights file")
    state = _read_state_dict(p)
    inner = getattr(module, "module", None)
    targets: list[nn.Module] = [module] + ([inner] if isinstance(inner, nn.Module) else [])
    errors = []
    for target in targets:
        mine = target.state_dict()
        missing, unexpected = sorted(set(mine) - set(state)), sorted(set(state) - set(mine))
        bad = [k for k in mine if k in state and tuple(state[k].shape) != tuple(mine[k].shape)]
        if not (missing or unexpected or bad):
            target.load_state_dict(state)
            return
        errors.append(
            f"{type(target).__name__}: missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape {bad[:5]}"
        )
    raise CheckpointError(f"{p}: weights do not fit the model ({'; '.join(errors)})")


def _read_state_dict(p: Path) -> dict[str, torch.Tensor]:
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(p))
        except Exception as e:  # safetensors raises its own error types
            raise CheckpointError(f"{p}: not a readable safetensors file ({e})") from None
    try:
        data: Any = torch.load(p, map_location="cpu", weights_only=True)  # never runs code
    except Exception as e:  # pickle errors, unsupported globals, truncated files
        raise CheckpointError(
            f"{p}: not a state_dict torch.load(weights_only=True) can read ({cause_text(e)})"
        ) from None
    if isinstance(data, dict):
        for key in _NESTED_KEYS:
            if isinstance(data.get(key), dict):
                data = data[key]
                break
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(f"{p}: expected a state_dict (names -> tensors), got {type(data).__name__}")
    return dict(data)


def _import(source: str) -> Any:
    if source.endswith(".py"):
        path = Path(source).resolve()
        if not path.is_file():
            raise ConfigError(f"{source}: no such Python file")
        name = "rnnx_user_" + re.sub(r"\W", "_", path.stem)
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"{source}: cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        with _on_path(str(path.parent)):  # its sibling modules import as they do for python file.py
            sys.modules[name] = module
            spec.loader.exec_module(module)
        return module
    with _on_path(os.getcwd()):
        try:
            return importlib.import_module(source)
        except ModuleNotFoundError as e:
            if e.name and source.startswith(e.name):
                raise ConfigError(f"{source}: no such module (looked in the current folder and sys.path)") from None
            raise


def _resolve(module: Any, attr: str, ref: str) -> Any:
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{ref}: {type(obj).__name__} {getattr(obj, '__name__', '')!s} has no attribute {part!r}")
        obj = getattr(obj, part)
    return obj


@contextlib.contextmanager
def _on_path(folder: str) -> Iterator[None]:
    """Put a folder first on ``sys.path`` for the duration of an import."""
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):  # the user's code removed it already
            sys.path.remove(folder)


def load_model(
    source: str,
    *,
    weights: str | None = None,
    example_shape: str | Sequence[int] | None = None,
    example_dtype: str | None = None,
) -> nn.Module:
    """What the CLI's CKPT argument names: a zoo checkpoint / run directory, or a reference.

    Args:
        source: a checkpoint file, a run directory, or ``file.py:factory`` /
            ``package.module:factory`` (imported and run).
        weights: reference only: a weights file for the factory's module.
        example_shape: reference only: ``"B,T,F..."`` or a sequence of ints.

    Raises:
        ConfigError: ``weights``/``example_shape`` given for a checkpoint, or a bad shape.
        CheckpointError: from loading a checkpoint or weights.
    """
    if not is_reference(source):
        given = [
            n
            for n, v in (("--weights", weights), ("--example-shape", example_shape), ("--example-dtype", example_dtype))
            if v
        ]
        if given:
            raise ConfigError(
                f"{' and '.join(given)}: only for a model given as file.py:factory or "
                f"package.module:factory; {source!r} is a checkpoint, which holds "
                f"its weights and shapes"
            )
        from rnnx.models.checkpoint import load

        model = load(source)
        setattr(model, SOURCE_ATTRIBUTE, {"checkpoint": Path(source).name})  # noqa: B010
        return model
    shape = parse_shape(example_shape) if isinstance(example_shape, str) else example_shape
    model = load_reference(source, weights=weights, example_shape=shape, example_dtype=example_dtype)
    factory = source.rsplit(":", 1)[1]
    if weights is None:
        logger.warning(
            "no --weights: %s's weights are whatever %s() made (random initialisation unless it "
            "loads trained ones itself)",
            type(getattr(model, "module", model)).__name__,
            factory,
        )
    setattr(
        model,
        SOURCE_ATTRIBUTE,
        {
            "factory": factory,  # noqa: B010
            "weights": None if weights is None else Path(weights).name,
        },
    )
    return model


SOURCE_ATTRIBUTE = "rnnx_source"  # read by rnnx.exporter.contract.weights_fingerprint


def parse_shape(text: str) -> tuple[int, ...]:
    """``"2,5,7"`` -> ``(2, 5, 7)``; a clear error for anything else."""
    try:
        shape = tuple(int(d) for d in text.replace(" ", "").split(","))
    except ValueError:
        shape = ()
    if len(shape) < 2 or any(d <= 0 for d in shape):
        raise ConfigError(
            f"--example-shape: expected positive integers B,T,F... (at least batch and time), e.g. 2,5,7; got {text!r}"
        )
    return shape
