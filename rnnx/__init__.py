"""rnnx: export recurrent PyTorch models with explicit state and stream them on ONNX Runtime.

The package root stays light: importing ``rnnx`` loads neither torch nor onnx, so
``rnnx.runtime`` can ship to machines that have only numpy and onnxruntime.
Import the parts you need: ``rnnx.models``, ``rnnx.exporter``, ``rnnx.runtime``.
"""

__version__ = "0.1.0"
