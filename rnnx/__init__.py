"""rnnx: export recurrent PyTorch models with explicit state and stream them on ONNX Runtime.

The package root stays light: importing ``rnnx`` loads neither torch nor onnx, so
``rnnx.runtime`` can ship to machines that have only numpy and onnxruntime.
Import the parts you need: ``rnnx.models``, ``rnnx.exporter``, ``rnnx.runtime``.
``rnnx.wrap`` (your module as written -> the rnnx contract) loads torch on first use.
"""

from typing import Any

from rnnx.version import __version__

__all__ = ["__version__", "wrap"]


def __getattr__(name: str) -> Any:
    """``rnnx.wrap`` on first access (it needs torch; the package root does not)."""
    if name == "wrap":
        from rnnx.models.wrap import wrap

        return wrap
    raise AttributeError(f"module 'rnnx' has no attribute {name!r}")
