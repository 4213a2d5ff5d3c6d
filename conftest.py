"""Repository-wide pytest setup: doctests in ``rnnx/`` run in a fresh temporary directory."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _doctests_run_in_a_temp_dir(request: pytest.FixtureRequest, tmp_path, monkeypatch) -> None:
    """Docstring examples write files (``m.onnx``, ``runs/...``): keep them out of the checkout."""
    if isinstance(request.node, pytest.DoctestItem):
        monkeypatch.chdir(tmp_path)


# The longest test modules first: `make test` runs one module per worker (--dist loadscope), and
# xdist hands modules out in collection order, so a long module collected last leaves the other
# worker idle at the end. Longest-first keeps both busy (order inside a module is unchanged).
SLOW_FIRST = (
    "tests/triton_server/",
    "tests/test_install.py",
    "tests/test_benchmarks.py",
    "tests/test_readme.py",
    "tests/exporter/test_parity_matrix.py",
    "tests/exporter/test_pte_export.py",
    "tests/exporter/strategies/test_dynamo.py",
    "tests/test_crash.py",
    "tests/exporter/test_portability.py",
)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::")[0]
        return next((i for i, prefix in enumerate(SLOW_FIRST) if path.startswith(prefix)), len(SLOW_FIRST))

    items.sort(key=rank)  # stable: each module's tests stay together and in order
