"""The ONNX tools are tested on files the exporter wrote: the exporter tests' shared fixtures."""

from tests.exporter.conftest import exported, make_model  # noqa: F401 (pytest fixtures)
