"""The package version: one place, read by ``rnnx/__init__.py``, the build (pyproject) and every file rnnx writes."""

__version__ = "0.1.0"
