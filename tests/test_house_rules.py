"""The house rules of issue 19 that no import contract can state, read from the source:

- every onnxruntime session is made in one place, :mod:`rnnx.runtime.backend` (the engine seam);
- no public signature outside the backend takes or returns an onnxruntime type;
- rnnx reads no onnxruntime private attribute (``InferenceSession._sess``, ``IOBinding._iobinding``);
- no unit test asserts a wall-clock time (timing lives in benchmarks/, as ratios);
- tolerances live in one table (rnnx/onnx_tools/compare.py's TOLERANCES);
- ``make test`` runs the linters, the type checker and the strict docs build.

Each check has a twin that shows it can fail on a deliberate violation.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BACKEND = Path("rnnx/runtime/backend.py")  # the one module that makes and runs onnxruntime sessions
ORT_FACTORIES = {"InferenceSession", "SessionOptions"}
TABLE = Path("rnnx/onnx_tools/compare.py")  # TOLERANCES: (family, precision) -> Tolerance
TOLERANCE_NAMES = ("atol", "rtol", "tol", "tolerance")
# tolerances outside the table today, each a review finding to move into it (then drop it here)
KNOWN_OUTSIDE: dict[str, list[str]] = {}  # tolerances allowed outside the table (none today)
ORT_PRIVATES = {"_sess", "_iobinding"}  # onnxruntime's wrappers around its native objects
CLOCKS = {"perf_counter", "perf_counter_ns", "monotonic", "monotonic_ns", "time", "time_ns", "process_time"}


def _ort_names(tree: ast.AST) -> set[str]:
    """The names a module binds to onnxruntime or to things imported from it."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.asname or a.name for a in node.names if a.name.split(".")[0] == "onnxruntime"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "onnxruntime":
            names |= {a.asname or a.name for a in node.names}
    return names


def _uses(expr: ast.AST, names: set[str]) -> bool:
    """Whether ``expr`` reads one of ``names`` (``ort``, ``ort.X``, ``InferenceSession``, ...)."""
    return any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(expr))


def private_reads(source: str) -> list[int]:
    """Lines that read one of onnxruntime's private attributes (``x._sess``, ``getattr(x, "_sess")``)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ORT_PRIVATES:
            lines.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr"):
            if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and node.args[1].value in ORT_PRIVATES:
                lines.append(node.lineno)
    return lines


def session_factories(source: str) -> list[int]:
    """Lines that call ``InferenceSession(...)`` or ``SessionOptions(...)`` of onnxruntime."""
    tree = ast.parse(source)
    ort = _ort_names(tree)
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name in ORT_FACTORIES and _uses(f, ort):
                lines.append(node.lineno)
    return lines


def ort_typed_signatures(source: str) -> list[str]:
    """Public functions and methods whose annotations name an onnxruntime type."""
    tree = ast.parse(source)
    ort = _ort_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            args = node.args
            annotations = [a.annotation for a in args.posonlyargs + args.args + args.kwonlyargs if a.annotation]
            for extra in (args.vararg, args.kwarg):
                if extra is not None and extra.annotation is not None:
                    annotations.append(extra.annotation)
            if node.returns is not None:
                annotations.append(node.returns)
            if any(_annotation_names(a) & (ort | {"onnxruntime"}) for a in annotations):
                found.append(f"{node.name} (line {node.lineno})")
    return found


def _annotation_names(annotation: ast.expr) -> set[str]:
    """The names an annotation reads, inside quoted parts too (``"ort.InferenceSession"``)."""
    names = set()
    for node in ast.walk(annotation):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                names |= _annotation_names(ast.parse(node.value, mode="eval").body)
            except SyntaxError:  # a Literal["..."] value, not a type
                pass
    return names


def wall_clock_asserts(source: str) -> list[int]:
    """Lines of ``assert`` statements that compare a clock reading (``time.perf_counter()`` and
    friends, or a name computed from one in the same function)."""
    tree = ast.parse(source)
    clocks = {  # `from time import perf_counter as now`: calls to these names read a clock too
        a.asname or a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.module == "time"
        for a in n.names
        if a.name in CLOCKS
    }
    lines = []
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        timed: set[str] = set(clocks)
        for node in ast.walk(func):  # names assigned from a clock, or from such names
            if (
                isinstance(node, (ast.Assign, ast.AnnAssign))
                and node.value is not None
                and _reads_clock(node.value, timed)
            ):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                timed |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        lines += [n.lineno for n in ast.walk(func) if isinstance(n, ast.Assert) and _reads_clock(n.test, timed)]
    return sorted(set(lines))


def _reads_clock(expr: ast.AST, timed: set[str]) -> bool:
    for n in ast.walk(expr):
        if isinstance(n, ast.Name) and n.id in timed:
            return True
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in CLOCKS:
            if isinstance(n.func.value, ast.Name) and n.func.value.id == "time":
                return True
    return False


def tolerance_literals(source: str) -> list[str]:
    """Names given a float literal as a tolerance: ``Tolerance(1e-5, 1e-6)``, ``atol=1e-5``
    arguments, ``rtol = 1e-4`` assignments, ``def f(atol=1e-5)`` defaults (a name is a tolerance when it is, starts or
    ends with atol, rtol, tol or tolerance)."""

    def is_tol(name: str) -> bool:
        parts = name.lower().split("_")
        return parts[0] in TOLERANCE_NAMES or parts[-1] in TOLERANCE_NAMES

    def has_float(expr: ast.AST | None) -> bool:
        return expr is not None and any(isinstance(n, ast.Constant) and type(n.value) is float for n in ast.walk(expr))

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and ast.unparse(node.func).split(".")[-1] == "Tolerance":
            if any(has_float(a) for a in [*node.args, *(k.value for k in node.keywords)]):
                found.append("Tolerance")
        elif isinstance(node, ast.keyword) and node.arg and is_tol(node.arg) and has_float(node.value):
            found.append(node.arg)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and has_float(node.value):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found += [t.id for t in targets if isinstance(t, ast.Name) and is_tol(t.id)]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            positional = a.posonlyargs + a.args
            pairs = list(zip(positional[len(positional) - len(a.defaults) :], a.defaults))
            pairs += list(zip(a.kwonlyargs, a.kw_defaults))
            found += [arg.arg for arg, default in pairs if is_tol(arg.arg) and has_float(default)]
    return found


def _package_files() -> list[Path]:
    return sorted((ROOT / "rnnx").rglob("*.py"))


def test_only_the_backend_makes_onnxruntime_sessions() -> None:
    """The exporter's probes, the ONNX tools and the runtime all go through rnnx.runtime.backend."""
    outside = {
        str(f.relative_to(ROOT)): lines
        for f in _package_files()
        if f.relative_to(ROOT) != BACKEND and (lines := session_factories(f.read_text()))
    }
    assert not outside, f"onnxruntime sessions made outside {BACKEND}: {outside}"
    assert session_factories((ROOT / BACKEND).read_text()), "the backend makes no session: the scan is blind"


def test_no_public_signature_outside_the_backend_takes_onnxruntime_types() -> None:
    found = {
        str(f.relative_to(ROOT)): sigs
        for f in _package_files()
        if f.relative_to(ROOT) != BACKEND and (sigs := ort_typed_signatures(f.read_text()))
    }
    assert not found, f"public signatures with onnxruntime types: {found}"


def test_rnnx_reads_no_onnxruntime_private_attribute() -> None:
    """The step fast path runs the public InferenceSession.run_with_iobinding (without RunOptions:
    with one, onnxruntime 1.32's wrapper reads its config on every call)."""
    found = {str(f.relative_to(ROOT)): lines for f in _package_files() if (lines := private_reads(f.read_text()))}
    assert not found, f"onnxruntime private attributes read: {found}"


@pytest.mark.parametrize(
    "source",
    ["run = session._sess.run_with_iobinding\n", "inner = getattr(session, '_sess', None)\n", "b._iobinding.x()\n"],
    ids=["attribute", "getattr", "binding"],
)
def test_a_private_read_is_found(source: str) -> None:
    assert private_reads(source) == [1]


def test_no_unit_test_asserts_a_wall_clock_time() -> None:
    """Performance goals are ratios in benchmarks/, measured side by side; a time bound in a unit
    test fails on a loaded machine and passes on a broken one."""
    found = {
        str(f.relative_to(ROOT)): lines
        for f in sorted((ROOT / "tests").rglob("*.py"))
        if (lines := wall_clock_asserts(f.read_text()))
    }
    assert not found, f"wall-clock asserts (move the timing to benchmarks/): {found}"


def test_tolerances_live_in_one_table() -> None:
    """A tolerance written where it is used is a second table: put it in compare.TOLERANCES."""
    found = {
        str(f.relative_to(ROOT)): names
        for f in _package_files()
        if f.relative_to(ROOT) != TABLE and (names := tolerance_literals(f.read_text()))
    }
    new = {f: names for f, names in found.items() if set(names) - set(KNOWN_OUTSIDE.get(f, []))}
    assert not new, f"tolerances outside {TABLE}: {new}"
    assert tolerance_literals((ROOT / TABLE).read_text()), "the table holds no tolerance: the scan is blind"


# --- the checks can fail ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "source",
    [
        "import onnxruntime as ort\ns = ort.InferenceSession('m.onnx')\n",
        "import onnxruntime\nso = onnxruntime.SessionOptions()\n",
        "from onnxruntime import InferenceSession\ns = InferenceSession('m.onnx')\n",
    ],
    ids=["alias", "module", "imported-name"],
)
def test_a_session_made_elsewhere_is_found(source: str) -> None:
    assert session_factories(source) == [2]


@pytest.mark.parametrize(
    "source",
    [
        "import onnxruntime as ort\ndef open_it(options: ort.SessionOptions) -> None: ...\n",
        "import onnxruntime as ort\nclass S:\n    def session(self) -> 'ort.InferenceSession': ...\n",
        "from onnxruntime import IOBinding\ndef f(*b: IOBinding | None) -> None: ...\n",
    ],
    ids=["argument", "string-return", "imported-name"],
)
def test_an_onnxruntime_type_in_a_public_signature_is_found(source: str) -> None:
    assert len(ort_typed_signatures(source)) == 1
    assert not ort_typed_signatures(source.replace("def ", "def _"))  # private helpers may


@pytest.mark.parametrize(
    "source",
    [
        "import time\ndef test_x():\n    start = time.perf_counter()\n    work()\n"
        "    assert time.perf_counter() - start < 2.0\n",
        "import time\ndef test_x():\n    t0 = time.monotonic()\n    work()\n    took = time.monotonic() - t0\n"
        "    assert took < 4.0, took\n",
        "from time import perf_counter as now\ndef test_x():\n    t0 = now()\n    work()\n    assert now() - t0 < 1\n",
    ],
    ids=["inline", "via-a-name", "imported-clock"],
)
def test_a_wall_clock_assert_is_found(source: str) -> None:
    assert wall_clock_asserts(source) == [source.count("\n")]
    loop = "import time\ndef test_x():\n    deadline = time.monotonic() + 5\n    while time.monotonic() < deadline:\n"
    assert not wall_clock_asserts(loop + "        assert poll()\n")  # a deadline to wait for is not a bound


def make_recipes(makefile: str) -> dict[str, tuple[list[str], str]]:
    """``{target: (prerequisites, recipe text)}`` of a Makefile's rules (variables not expanded)."""
    rules: dict[str, tuple[list[str], str]] = {}
    target = None
    for line in makefile.splitlines():
        if line.startswith("\t") and target is not None:
            rules[target] = (rules[target][0], rules[target][1] + line.strip() + "\n")
        elif (m := re.match(r"^([\w.-]+)\s*:(?!=)\s*(.*)$", line)) is not None:
            target = m.group(1)
            rules[target] = (m.group(2).split(), "")
        elif line and not line.startswith("#"):
            target = None
    return rules


def test_make_test_runs_the_linters_the_docs_build_and_the_layer_contracts() -> None:
    """``make test`` = ruff check, ruff format --check, mypy, mkdocs build --strict, then pytest
    (whose tests/test_layers.py runs import-linter)."""
    problems = make_test_gaps((ROOT / "Makefile").read_text())
    assert not problems, problems
    assert "def test_import_linter_contracts_hold" in (ROOT / "tests" / "test_layers.py").read_text()


def make_test_gaps(makefile: str) -> list[str]:
    """What ``make test`` (with the targets it depends on) fails to run."""
    rules = make_recipes(makefile)
    if "test" not in rules:
        return ["no test target"]
    seen, todo, recipes = set(), ["test"], ""
    while todo:  # test and everything it depends on
        target = todo.pop()
        if target in seen or target not in rules:
            continue
        seen.add(target)
        todo += rules[target][0]
        recipes += rules[target][1]
    needed = {
        "ruff check": r"ruff check",
        "ruff format --check": r"ruff format --check",
        "mypy rnnx": r"mypy rnnx",
        "mkdocs build --strict": r"mkdocs build --strict",
        "pytest": r"-m pytest",
    }
    return [name for name, pattern in needed.items() if not re.search(pattern, recipes)]


def test_a_make_test_without_lint_or_docs_is_found() -> None:
    makefile = (ROOT / "Makefile").read_text()
    without_lint = re.sub(r"^(test:.*?) lint\b", r"\1", makefile, flags=re.M)
    assert make_test_gaps(without_lint) == ["ruff check", "ruff format --check", "mypy rnnx"]
    without_strict = makefile.replace("mkdocs build --strict", "mkdocs build")
    assert make_test_gaps(without_strict) == ["mkdocs build --strict"]


@pytest.mark.parametrize(
    "source, names",
    [
        ("ok = np.allclose(a, b, atol=1e-5)\n", ["atol"]),
        ("def check(a, b, *, rtol: float = 1e-4): ...\n", ["rtol"]),
        ("STEP_ATOL = 2e-5\n", ["STEP_ATOL"]),
        ("loose = compare.Tolerance(1e-3, 1e-3)\n", ["Tolerance"]),
        ("atol = 1e-6 if fp32 else table_atol\n", ["atol"]),
        ("atol = tolerance_for(kind).atol\nsteps = 1.5\n", []),
    ],
    ids=["argument", "default", "constant", "made-here", "conditional", "from-the-table"],
)
def test_a_tolerance_outside_the_table_is_found(source: str, names: list[str]) -> None:
    assert tolerance_literals(source) == names
