"""``rnnx inspect``: show a model file's inputs, outputs, state contract and recurrent nodes."""

from __future__ import annotations

import json
from typing import Any

import click

from rnnx.commands._common import command, echo

MAX_LINE = 300  # characters of one printed line; --json has everything


def _clip(line: str) -> str:
    """``line`` cut to :data:`MAX_LINE` characters, saying how much was left out."""
    if len(line) <= MAX_LINE:
        return line
    return f"{line[: MAX_LINE - 60]}... {len(line) - MAX_LINE + 60} more characters (--json shows all)"


def _shape(shape: list) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _io_lines(values: list[dict[str, Any]]) -> list[str]:
    return [f"  {v['name']:<12} {_shape(v['shape']):<24} {v['dtype']}" for v in values]


def _streamable(value: Any) -> str:
    if value is None:
        return "unknown (no rnnx.spec; see the recurrent nodes below)"
    return "yes" if value else "no (bidirectional: whole sequences only)"


def _step_state(step: dict[str, Any]) -> str:
    if not step["present"]:
        return "MISSING beside the file: steps run the main graph"
    if not step["sha256_ok"]:
        return "present, but its SHA-256 does NOT match the spec: the runtime refuses the file"
    return "present, SHA-256 matches"


def _recurrent_lines(nodes: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in nodes:
        where = "" if r["where"] == "graph" else f" ({r['where']})"
        if "states" not in r:
            lines.append(
                f"  {r['op']} {r['name']}{where}: carries {', '.join(r['carried']) or 'nothing'}"
                f" -> {', '.join(r['carried_out']) or '-'}"
            )
            continue
        lines.append(
            f"  {r['op']} {r['name']}{where}: hidden {r['hidden_size']}, {r['direction']}, "
            f"layout {r['layout']} ({'batch' if r['layout'] else 'time'}-major)"
        )
        for s in r["states"]:
            src = s["source"] + (f" {', '.join(s['source_inputs'])}" if s["source_inputs"] else "")
            out = (
                f"-> graph output {', '.join(s['exposed_as'])}"
                if s["exposed_as"]
                else "-> unused"
                if s["final"]
                else "-> not computed"
            )
            lines.append(f"    {s['state']}: initial {s['initial'] or '-'} ({src})  final {s['final'] or '-'} {out}")
    return lines


def _lines(info: dict[str, Any]) -> list[str]:
    size = info["size_bytes"]
    lines = [f"file:        {info['path']} ({info['format']}, {size / 1024:.1f} KiB)"]
    if info["rnnx_spec"]:
        lines += [
            f"kind:        {info['kind']}   rnnx {info['rnnx_version'] or '?'}",
            f"exporter:    {info['exporter'] or '?'}   opset: {info['opset'] or '-'}   precision: {info['precision']}",
        ]
    else:
        lines += [
            "kind:        - (no rnnx.spec: not exported by rnnx)",
            f"producer:    {info.get('producer') or '?'}   opset: {info['opset'] or '-'}",
        ]
    bundle = info.get("seq2seq")
    if bundle:  # one graph of an encoder–decoder bundle: how values flow between the two
        flow = ", ".join(f"{dst} <- {src}" for dst, src in bundle["init"].items())
        lines += [
            f"streamable:  no (the {bundle['role']} of a seq2seq bundle: forecast with "
            f"rnnx.runtime.ForecastSession on its folder)",
            f"bundle:      {bundle['encoder']} -> {bundle['decoder']}; first decoder inputs: {flow}; "
            f"per step: {bundle['feedback']} <- {bundle['output']['name']}, states in <- out",
        ]
        lines.append("inputs:")
    else:
        lines += [f"streamable:  {_streamable(info['streamable'])}", "inputs:"]
    lines += _io_lines(info["inputs"]) + ["outputs:"] + _io_lines(info["outputs"])
    if info["rnnx_spec"]:
        lines.append("state:")
        lines += [
            f"  {s['name']:<6} {s['input']} -> {s['output']}  {_shape(s['shape'])} {s['dtype']}" for s in info["state"]
        ]
    step = info.get("step_graph")
    if step:
        lines.append(f"step graph:  {step['file']} ({_step_state(step)})")
    if info["config"]:
        lines.append("config:      " + json.dumps(info["config"], sort_keys=True))
    if "ops" in info:
        lines.append("ops:         " + ", ".join(f"{op} {n}" for op, n in info["ops"].items()))
        if info["recurrent"]:
            lines += ["recurrent nodes:"] + _recurrent_lines(info["recurrent"])
        if not info["rnnx_spec"]:
            guess = info["state_guess"]
            lines.append(
                "state pairs (guessed): "
                + (", ".join(f"{g['input']} -> {g['output']} (by {g['by']})" for g in guess) or "none")
            )
            if guess:
                lines.append(
                    "  try: rnnx run MODEL INPUT " + " ".join(f"--state-map {g['input']}={g['output']}" for g in guess)
                )
            elif any(r.get("states") for r in info["recurrent"]):
                lines.append("  state kept inside the graph; expose it with: rnnx stateful MODEL --out OUT.onnx")
    return lines


@command(json_report=True)
@click.argument("model_path", metavar="MODEL")
def inspect(model_path: str) -> dict[str, Any]:
    """Show MODEL's (any .onnx, or an rnnx .ort or TorchScript .pt) inputs, outputs and state.

    ONNX files rnnx did not write are described from their graph: opset, op counts,
    recurrent nodes (LSTM/GRU/RNN/Scan/Loop) with their state inputs and outputs,
    and a guess of the state pairs to pass to `rnnx run --state-map`.

    JSON: path, format, size_bytes, rnnx_spec, kind, rnnx_version, exporter, opset,
    streamable, inputs, outputs, state, config, precision, step_graph (file, sha256, present,
    sha256_ok; null when the file has none); for ONNX also producer, ops, recurrent, state_guess.

    \b
    Examples:
      rnnx inspect exported/model.onnx
      rnnx inspect someone_elses.onnx --json -      # JSON only, on stdout
    """
    from rnnx.onnx_tools.describe import describe

    info = describe(model_path)
    echo("\n".join(_clip(line) for line in _lines(info)))
    return info
