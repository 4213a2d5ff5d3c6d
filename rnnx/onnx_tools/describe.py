"""What a model file takes, returns and carries (``rnnx inspect``), for any ONNX file.

rnnx files are described by their ``rnnx.spec``; every ONNX file, whoever wrote it,
is also described from its graph: inputs and outputs, opset, op counts, recurrent
nodes (LSTM/GRU/RNN/Scan/Loop) with their state inputs and outputs, and a guess of
which graph inputs and outputs form state pairs (by name, then by shape).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from rnnx.errors import SpecError
from rnnx.onnx_tools.dynamic_axes import dims, elem_dtype_name
from rnnx.onnx_tools.graph import all_graphs, stored_spec
from rnnx.onnx_tools.ort_format import ort_io
from rnnx.onnx_tools.rnn_nodes import find_recurrent
from rnnx.onnx_tools.spec_io import file_format, load_onnx, read_spec
from rnnx.runtime.step_graph import find_step_graph
from rnnx.runtime.tensor_info import TensorInfo
from rnnx.spec import DTYPES, ModelSpec

# (input token, output token): "h_in" -> "h_out", "h0" -> "hn", "past_k" -> "present_k", ...
_NAME_PAIRS = (
    ("in", "out"),
    ("input", "output"),
    ("inp", "out"),
    ("0", "n"),
    ("h0", "hn"),
    ("c0", "cn"),
    ("initial", "final"),
    ("init", "final"),
    ("prev", "next"),
    ("past", "present"),
    ("old", "new"),
    ("i", "o"),
)
_SUFFIXES = ("n", "N", "_out", "_new", "_next", "_n", ".out", "out")  # "state" -> "stateN"


def _onnx_io(values: Any, skip: frozenset = frozenset()) -> list[dict[str, Any]]:
    """The graph's own report of its inputs or outputs (initializers skipped), as description rows."""
    return [_report(v).to_dict() for v in values if v.name not in skip]


def _report(v: Any) -> TensorInfo:
    elem = v.type.tensor_type.elem_type
    try:
        dtype = elem_dtype_name(elem)
    except (KeyError, TypeError, ValueError):
        dtype = f"onnx type {elem}"
    return TensorInfo(v.name, tuple(dims(v)), dtype if dtype in DTYPES else None, dtype)


def _spec_io(spec: ModelSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Graph inputs and outputs as the contract declares them (files without a readable graph)."""
    ins = [spec.input.as_tensor().to_dict(), *(s.as_tensor(s.input).to_dict() for s in spec.state)]
    outs = [spec.output.as_tensor().to_dict(), *(s.as_tensor(s.output).to_dict() for s in spec.state)]
    return ins, outs


def _tokens(name: str) -> list[str]:
    return [t for t in re.split(r"([_.:/\-])", name)]


def _name_candidates(name: str) -> list[str]:
    """Output names that would pair with input ``name`` by naming convention."""
    cands = [name + s for s in _SUFFIXES]
    toks = _tokens(name)
    for i, tok in enumerate(toks):
        for a, b in _NAME_PAIRS:
            if tok.lower() == a:
                cased = b.upper() if tok.isupper() else b.capitalize() if tok[:1].isupper() else b
                cands.append("".join(toks[:i] + [cased] + toks[i + 1 :]))
            elif tok.lower().endswith(a) and len(tok) > len(a) and a.isdigit():  # "h0" -> "hn"
                cands.append("".join(toks[:i] + [tok[: -len(a)] + b] + toks[i + 1 :]))
    return cands


def guess_state_pairs(inputs: list[dict[str, Any]], outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Guess which graph inputs carry state to which outputs.

    First by name (``h_in``/``h_out``, ``h0``/``hn``, ``state``/``stateN``,
    ``past``/``present``...), then among the rest by equal shape and dtype when the
    match is unique both ways. The first unpaired input is taken as the data input
    and never paired by shape.

    Returns:
        ``[{"input", "output", "by": "name" | "shape"}]``.
    """
    outs = {o["name"]: o for o in outputs}
    pairs, used_in, used_out = [], set(), set()
    for i in inputs:
        for cand in _name_candidates(i["name"]):
            o = outs.get(cand)
            if (
                o is not None
                and cand not in used_out
                and o["dtype"] == i["dtype"]
                and len(o["shape"]) == len(i["shape"])
            ):
                pairs.append({"input": i["name"], "output": cand, "by": "name"})
                used_in.add(i["name"])
                used_out.add(cand)
                break
    rest_in = [i for i in inputs if i["name"] not in used_in][1:] if len(inputs) > 1 else []
    rest_out = [o for o in outputs if o["name"] not in used_out]

    def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return a["shape"] == b["shape"] and a["dtype"] == b["dtype"] and "?" not in a["shape"]

    for i in rest_in:
        match = [o for o in rest_out if same(i, o)]
        if len(match) == 1 and sum(same(j, match[0]) for j in rest_in) == 1:
            pairs.append({"input": i["name"], "output": match[0]["name"], "by": "shape"})
    return pairs


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON-serialisable description of any ``.onnx`` file or an rnnx ``.ort``/TorchScript file.

    Args:
        path: the model file.

    Returns:
        format, file size, inputs/outputs (name, shape, dtype; from the graph for ONNX),
        state pairs, streamable, opset, exporter strategy, kind, config, rnnx version
        (None where the file has no ``rnnx.spec``), the whole ``spec``, ``step_graph`` (None, or
        :func:`step_graph_status`), and for ONNX files also ``producer``,
        ``ops`` (op type -> count), ``recurrent`` (nodes with their state inputs and
        outputs) and ``state_guess`` (likely state pairs among the graph I/O).

    Raises:
        ModelFileError: missing or corrupt, or a TorchScript file not exported by rnnx.
        SpecError: the file's ``rnnx.spec`` is malformed.
    """
    fmt = file_format(path)
    info: dict[str, Any] = {"path": os.fspath(path), "format": fmt, "size_bytes": Path(path).stat().st_size}
    if fmt == "onnx":
        model = load_onnx(path)
        spec = stored_spec(model, path)
        graph = model.graph
        inits = frozenset(t.name for t in graph.initializer)
        info["inputs"], info["outputs"] = _onnx_io(graph.input, inits), _onnx_io(graph.output)
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    else:
        spec = read_spec(path)
        info["inputs"], info["outputs"] = ort_io(path) if fmt == "ort" else _spec_io(spec)
        opset = spec.opset
    info.update(
        {
            "rnnx_spec": spec is not None,
            "state": []
            if spec is None
            else [
                {"name": s.name, "input": s.input, "output": s.output, "shape": list(s.shape), "dtype": s.dtype}
                for s in spec.state
            ],
            "streamable": None if spec is None else spec.streamable,
            "opset": opset,
            "exporter": None if spec is None else spec.exporter,
            "kind": None if spec is None else spec.kind,
            "config": {} if spec is None else spec.config,
            "rnnx_version": None if spec is None else spec.rnnx_version,
            "precision": None if spec is None else spec.precision,
            "seq2seq": None
            if spec is None or spec.seq2seq is None
            else {"role": spec.role, **spec.seq2seq.to_dict()},  # a seq2seq bundle file: its role and the contract
            "spec": None if spec is None else spec.to_dict(),
            "step_graph": None if spec is None or spec.step_graph is None else step_graph_status(path, spec),
        }
    )
    if fmt == "onnx":
        info.update(_graph_facts(model, info))
    return info


def step_graph_status(path: str | os.PathLike, spec: ModelSpec) -> dict[str, Any]:
    """The spec's step graph and whether it is usable: ``{file, sha256, present, sha256_ok}``.

    ``present``: the file exists beside ``path``; ``sha256_ok``: its bytes hash to the
    recorded SHA-256 (None when absent). Only a present file with a matching hash is used.
    """
    entry = spec.step_graph
    if entry is None:
        raise SpecError(f"{path}: expected a spec that records a step graph, got none (spec.step_graph is None)")
    _, digest = find_step_graph(path, entry)
    return {
        "file": entry.file,
        "sha256": entry.sha256,
        "present": digest is not None,
        "sha256_ok": None if digest is None else digest == entry.sha256,
    }


def _graph_facts(model: Any, info: dict[str, Any]) -> dict[str, Any]:
    ops = Counter(n.op_type for g in all_graphs(model.graph) for n in g.node)
    producer = " ".join(p for p in (model.producer_name, model.producer_version) if p)
    return {
        "producer": producer or None,
        "ops": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        "recurrent": [r.to_dict() for r in find_recurrent(model.graph)],
        "state_guess": guess_state_pairs(info["inputs"], info["outputs"]),
    }
