"""``rnnx run``: stream a recorded sequence through an exported model."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from rnnx.cli import main
from rnnx.exporter import export_onnx
from tests.commands import user_error
from tests.foreign import LstmWithState, export_lstm_with_state
from tests.runtime.conftest import (  # noqa: F401
    FOREIGN_K,
    FOREIGN_N,
    ForeignReference,
    foreign,
    reference,
    sequence,
    write_step_graph,
)
from tests.zoo import INPUT, TINY


@pytest.fixture(scope="module")
def lstm(tmp_path_factory):
    model = TINY["lstm-2l"]()
    path = tmp_path_factory.mktemp("run") / "lstm.onnx"
    export_onnx(model, path)
    return path, model


def invoke(*args: str):
    return CliRunner().invoke(main, ["run", *map(str, args)])


def test_npy_in_npy_out_matches_eager(lstm, tmp_path):
    path, model = lstm
    x = sequence(model, 1, 20)
    np.save(tmp_path / "x.npy", x[0])  # (T, F): batch axis added
    res = invoke(path, tmp_path / "x.npy", "--chunk", "7", "--out", tmp_path / "y.npy")
    assert res.exit_code == 0, res.output
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), reference(model, x), atol=1e-5)


def test_csv_and_state_files_continue_the_sequence(lstm, tmp_path):
    path, model = lstm
    x = sequence(model, 1, 12)
    np.savetxt(tmp_path / "a.csv", x[0, :5], delimiter=",", header="f0,f1,f2,f3,f4", comments="")
    np.savetxt(tmp_path / "b.csv", x[0, 5:], delimiter=",")
    assert invoke(path, tmp_path / "a.csv", "--state-out", tmp_path / "s.npz").exit_code == 0
    res = invoke(path, tmp_path / "b.csv", "--state-in", tmp_path / "s.npz", "--out", tmp_path / "y.csv")
    assert res.exit_code == 0, res.output
    got = np.loadtxt(tmp_path / "y.csv", delimiter=",", ndmin=2)
    np.testing.assert_allclose(got, reference(model, x)[0, 5:], atol=1e-5)


def test_summary_without_out(lstm, tmp_path):
    path, model = lstm
    np.save(tmp_path / "x.npy", sequence(model, 2, 4))  # (B, T, F)
    res = invoke(path, tmp_path / "x.npy")
    assert res.exit_code == 0 and "output shape (2, 4, 3)" in res.output


@pytest.mark.parametrize(
    "array, match",
    [
        (
            np.zeros((4, 6), np.float32),
            r"Error: x: expected shape \(1, T, 5\) \(batch, time, features\), got \(1, 4, 6\)",
        ),
        (np.zeros(4, np.float32), r"Error: INPUT: expected \(time, features...\)"),
        (np.zeros((4, 5), np.int64), "Error: x: expected dtype float32, got int64"),
    ],
    ids=["features", "rank", "dtype"],
)
def test_bad_input_is_one_line_exit_2(lstm, tmp_path, array, match):
    path, _ = lstm
    np.save(tmp_path / "x.npy", array)
    res = invoke(path, tmp_path / "x.npy")
    assert re.search(match, user_error(res)), res.output


def test_bad_files(lstm, tmp_path):
    path, _ = lstm
    (tmp_path / "x.txt").write_text("1,2")
    res = invoke(path, tmp_path / "x.txt")
    assert res.exit_code == 2 and "expected a .npy or .csv file" in res.output
    np.save(tmp_path / "x.npy", np.zeros((2, 5), np.float32))
    res = invoke(tmp_path / "missing.onnx", tmp_path / "x.npy")
    assert res.exit_code == 2 and "Error: model: expected an ONNX file" in res.output


def test_run_does_not_import_torch(lstm, tmp_path):
    path, _ = lstm
    np.save(tmp_path / "x.npy", np.zeros((3, 5), np.float32))
    code = (
        f"import sys; from rnnx.cli import main\n"
        f"main(['run', {str(path)!r}, {str(tmp_path / 'x.npy')!r}], standalone_mode=False)\n"
        f"sys.exit('torch imported' if 'torch' in sys.modules else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


# ---------------------------------------------------------------- ONNX files rnnx did not write
def test_foreign_frames_with_state_map_constant_and_context(foreign, tmp_path):
    path, model = foreign
    frames = np.random.default_rng(0).standard_normal((2, 6, FOREIGN_N)).astype(np.float32)  # (B, T, N)
    np.save(tmp_path / "x.npy", frames)
    res = invoke(
        path,
        tmp_path / "x.npy",
        "--state-map",
        "state=stateN",
        "--constant",
        "sr=8000",
        "--context",
        FOREIGN_K,
        "--chunk",
        4,
        "--out",
        tmp_path / "y.npy",
    )
    assert res.exit_code == 0, res.output
    assert "--constant sr: fed as int64 scalar (the graph input's dtype)" in res.stderr
    ref = ForeignReference(model, batch=2, sr=8000)  # sr given as text, fed as the graph's int64
    want = np.stack([ref(frames[:, t]) for t in range(6)], axis=1)  # (B, T, 1)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, atol=1e-5)


def test_foreign_graph_with_a_time_axis_streams_in_chunks(tmp_path):
    path = export_lstm_with_state(tmp_path / "ls.onnx")
    x = np.random.default_rng(1).standard_normal((9, 3)).astype(np.float32)  # (T, F)
    np.save(tmp_path / "x.npy", x)
    res = invoke(
        path,
        tmp_path / "x.npy",
        "--state-map",
        "h0=hn",
        "--state-map",
        "c0=cn",
        "--chunk",
        4,
        "--out",
        tmp_path / "y.npy",
    )
    assert res.exit_code == 0, res.output
    with torch.no_grad():
        want = LstmWithState()(torch.from_numpy(x[None]), torch.zeros(1, 1, 4), torch.zeros(1, 1, 4))[0]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want.numpy(), atol=1e-5)


@pytest.mark.parametrize(
    "args, match",
    [
        (["--state-map", "state"], r"Error: --state-map: expected IN=OUT, got 'state'"),
        (["--state-map", "nope=stateN"], r"Error: state_map: 'nope' is not a graph input"),
        (
            ["--state-map", "state=stateN", "--constant", "sr=1.5"],
            r"Error: --constant sr: graph input sr is int64, got '1.5'",
        ),
        (
            ["--state-map", "state=stateN", "--constant", "rate=1"],
            r"Error: --constant rate: not a graph input; inputs: \['input', 'sr', 'state'\]",
        ),
        (
            ["--state-map", "state=stateN"],
            r"Error: state_map: expected exactly one data input .* got \['input', 'sr'\]",
        ),
        ([], r"Error: model: no 'rnnx.spec' metadata .* state_map="),
    ],
    ids=["no-equals", "unknown-input", "fractional-int", "unknown-constant", "constant-missing", "no-map"],
)
def test_foreign_option_errors_are_one_line(foreign, tmp_path, args, match):
    np.save(tmp_path / "x.npy", np.zeros((3, FOREIGN_N), np.float32))
    res = invoke(foreign[0], tmp_path / "x.npy", *args)
    assert re.search(match, user_error(res)), res.output


def test_check_finite_raise_refuses_nan_input(lstm, tmp_path):
    path, model = lstm
    x = sequence(model, 1, 6)[0]
    x[3, 1] = np.nan
    np.save(tmp_path / "x.npy", x)
    res = invoke(path, tmp_path / "x.npy", "--check-finite", "raise")
    assert re.search(r"Error: x: expected finite values in the input, got 1 NaN/inf", user_error(res)), res.output
    res = invoke(path, tmp_path / "x.npy")  # the default: onnxruntime's LSTM hides the NaN
    assert res.exit_code == 0 and "nan" not in res.output.lower(), res.output


@pytest.fixture(scope="module")
def bidirectional(tmp_path_factory):
    path = tmp_path_factory.mktemp("bi") / "bi.onnx"
    export_onnx(TINY["gru-bi"](), path)
    return path


@pytest.mark.parametrize("flag", ["--state-in", "--state-out"])
def test_bidirectional_model_refuses_state_files(bidirectional, lstm, tmp_path, flag):
    """It used to save zeros (--state-out) and ignore --state-in silently."""
    np.save(tmp_path / "x.npy", np.zeros((4, 5), np.float32))
    path, _ = lstm
    assert invoke(path, tmp_path / "x.npy", "--state-out", tmp_path / "s.npz").exit_code == 0
    res = invoke(bidirectional, tmp_path / "x.npy", flag, tmp_path / ("s.npz" if flag == "--state-in" else "t.npz"))
    assert "is bidirectional" in user_error(res) and not (tmp_path / "t.npz").exists()


def test_npy_input_is_memory_mapped_and_a_lying_header_refused(lstm, tmp_path):
    from numpy.lib import format as npy

    from rnnx.commands.run import read_sequence

    np.save(tmp_path / "x.npy", np.zeros((6, 5), np.float32))
    assert isinstance(read_sequence(tmp_path / "x.npy", np.dtype("float32")), np.memmap)
    with open(tmp_path / "lie.npy", "wb") as f:  # promises 5e9 floats, holds 25
        npy.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 5)})
        f.write(b"\0" * 100)
    res = invoke(lstm[0], tmp_path / "lie.npy")
    assert re.search(r"Error: INPUT .*lie.npy: expected a numeric .npy array, got unreadable data", user_error(res))


def test_ragged_csv_is_one_line(lstm, tmp_path):
    (tmp_path / "x.csv").write_text("a,b,c,d,e\n1,2,3,4,5\n1,2\n")
    assert "Error: INPUT" in user_error(invoke(lstm[0], tmp_path / "x.csv"))


def test_token_ids_outside_the_vocabulary_are_refused(tmp_path):
    model = TINY["tokens-lstm"]()
    export_onnx(model, tmp_path / "tok.onnx")
    np.save(tmp_path / "ids.npy", np.array([[1, 2, 999]], np.int64))
    line = user_error(invoke(tmp_path / "tok.onnx", tmp_path / "ids.npy"))
    assert re.search(r"expected token ids in \[0, \d+\) \(vocab_size \d+\), got 999 at index \(0, 2\)", line)


@pytest.fixture(scope="module")
def csv_model(tmp_path_factory):
    """A --csv model trained from a file with a timestamp column and blank cells, exported."""
    root = tmp_path_factory.mktemp("csvmodel")
    rng = np.random.default_rng(0)
    rows = ["time,temp,load,note"]
    for i in range(120):
        temp = "" if i in (30, 31) else f"{np.sin(i / 5) + rng.normal(0, 0.1):.4f}"
        rows.append(f"2024-01-{i % 28 + 1:02d}T{i % 24:02d}:00,{temp},{np.cos(i / 7):.4f},x")
    (root / "data.csv").write_text("\n".join(rows) + "\n")
    res = CliRunner().invoke(
        main,
        [
            "train",
            "--csv",
            str(root / "data.csv"),
            "--target",
            "load",
            "--horizon",
            "2",
            "--window",
            "8",
            "--hidden-size",
            "4",
            "--epochs",
            "1",
            "--no-progress",
            "--out",
            str(root / "run"),
        ],
    )
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(
        main, ["export", str(root / "run"), "--out", str(root / "exp"), "--format", "onnx", "--no-check"]
    )
    assert res.exit_code == 0, res.output
    return root


def test_the_exported_file_alone_tells_features_target_and_horizon(csv_model):
    from rnnx.exporter import read_spec

    data = read_spec(csv_model / "exp" / "model.onnx").data
    assert data.task == "csv" and data.features == ("temp", "load") and data.target == "load"
    assert data.horizon == 2 and data.outputs == ("load+1", "load+2") and data.missing == "interpolate"
    assert data.normalization["inside_graph"] is True and len(data.normalization["input_mean"]) == 2


def test_run_takes_the_training_csv_as_is_and_names_the_outputs(csv_model, tmp_path):
    """The training CSV (timestamp and text columns, blank cells) goes straight in."""
    from rnnx.runtime import StreamingSession
    from rnnx.tabular import fill_missing, numeric, read_columns

    res = invoke(csv_model / "exp" / "model.onnx", csv_model / "data.csv", "--out", tmp_path / "f.csv")
    assert res.exit_code == 0, res.output
    assert "filled missing values by interpolate" in res.stderr
    lines = (tmp_path / "f.csv").read_text().splitlines()
    assert lines[0] == "load+1,load+2" and len(lines) == 121
    header, rows = read_columns(str(csv_model / "data.csv"))
    table, _ = fill_missing(
        np.stack([numeric(header, rows, c, "d") for c in ("temp", "load")], 1), ["temp", "load"], "interpolate", "d"
    )
    with StreamingSession(csv_model / "exp" / "model.onnx") as sess:
        want = sess.feed(table[None].astype(np.float32))[0]
    np.testing.assert_allclose(np.loadtxt(tmp_path / "f.csv", delimiter=",", skiprows=1), want, rtol=1e-5, atol=1e-6)
    summary = invoke(csv_model / "exp" / "model.onnx", csv_model / "data.csv")
    assert "last step: load+1=" in summary.output


def test_run_names_the_missing_feature_column(csv_model, tmp_path):
    (tmp_path / "x.csv").write_text("time,load\n1,2\n2,3\n")
    line = user_error(invoke(csv_model / "exp" / "model.onnx", tmp_path / "x.csv"))
    assert "needs columns temp, load" in line and "missing temp" in line


def test_token_model_reads_text_and_decodes(tmp_path):
    runner = CliRunner()
    res = runner.invoke(
        main, ["train", "--task", "chars", "--epochs", "1", "--no-progress", "--out", str(tmp_path / "run")]
    )
    assert res.exit_code == 0, res.output
    assert (
        runner.invoke(
            main, ["export", str(tmp_path / "run"), "--out", str(tmp_path / "exp"), "--format", "onnx", "--no-check"]
        ).exit_code
        == 0
    )
    (tmp_path / "in.txt").write_text("hellohello\n")
    res = invoke(tmp_path / "exp" / "model.onnx", tmp_path / "in.txt", "--decode", "--json", "-")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    (text,) = doc["text"]
    assert len(text) == 10 and set(text) <= set("ehlo")
    (tmp_path / "bad.txt").write_text("hex!")
    line = user_error(invoke(tmp_path / "exp" / "model.onnx", tmp_path / "bad.txt", "--decode"))
    assert "characters ['!', 'x'] are not in the model's vocabulary 'ehlo'" in line


def test_no_step_graph_runs_every_call_on_the_model(tmp_path):
    main_path = export_onnx(TINY["lstm-1l"](), tmp_path / "main.onnx", strategy="scan", step_graph=False).path
    path = write_step_graph(main_path, tmp_path / "with-step")  # its step graph returns y + 1
    x = np.random.default_rng(0).standard_normal((5, INPUT)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    ys = {}
    for flag in ("--step-graph", "--no-step-graph"):
        res = invoke(path, tmp_path / "x.npy", "--chunk", "1", "--out", tmp_path / f"{flag}.npy", flag)
        assert res.exit_code == 0, res.output
        ys[flag] = np.load(tmp_path / f"{flag}.npy")
    np.testing.assert_allclose(ys["--step-graph"], ys["--no-step-graph"] + 1.0, rtol=1e-5, atol=1e-5)


def test_state_out_onto_a_fifo_is_refused_and_the_fifo_kept(lstm, tmp_path):
    """It used to replace the FIFO (or a character device) with a regular 0600 file."""
    import os
    import stat

    path, _ = lstm
    np.save(tmp_path / "x.npy", np.zeros((3, 5), np.float32))
    os.mkfifo(tmp_path / "pipe")
    res = invoke(path, tmp_path / "x.npy", "--state-out", tmp_path / "pipe")
    assert "expected a regular file to write, got a FIFO" in user_error(res)
    assert stat.S_ISFIFO(os.stat(tmp_path / "pipe").st_mode)


def test_state_and_output_files_are_readable_by_others_under_umask_022(lstm, tmp_path):
    import os
    import stat

    path, _ = lstm
    np.save(tmp_path / "x.npy", np.zeros((3, 5), np.float32))
    old = os.umask(0o022)
    try:
        res = invoke(path, tmp_path / "x.npy", "--state-out", tmp_path / "s.npz", "--out", tmp_path / "y.npy")
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    assert [oct(stat.S_IMODE(os.stat(tmp_path / n).st_mode)) for n in ("s.npz", "y.npy")] == ["0o644"] * 2


# ---------------------------------------------------------------- input edges (issue 16)
@pytest.mark.parametrize(
    "name, content",
    [
        ("empty.csv", ""),
        ("header.csv", "f0,f1,f2,f3,f4\n"),
        ("zero.npy", np.zeros((0, 5), np.float32)),
        ("batch.npy", np.zeros((2, 0, 5), np.float32)),
    ],
    ids=["empty-csv", "header-only-csv", "zero-rows-npy", "zero-steps-batch"],
)
def test_zero_time_steps_is_one_line(lstm, tmp_path, name, content):
    """These crashed with a traceback (np.concatenate of no chunks)."""
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    else:
        np.save(path, content)
    err = user_error(invoke(lstm[0], path))
    assert re.search(rf"INPUT .*{name}: expected at least one time step, got none \(shape", err), err


def test_an_npz_renamed_npy_is_one_line(lstm, tmp_path):
    """np.load returned an NpzFile: AttributeError."""
    with open(tmp_path / "x.npy", "wb") as f:
        np.savez(f, x=np.zeros((3, 5), np.float32))
    err = user_error(invoke(lstm[0], tmp_path / "x.npy"))
    assert "x.npy: expected a .npy array, got an .npz archive (arrays x); save one array with np.save" in err


def test_a_first_row_with_an_empty_cell_is_data_not_a_header(lstm, tmp_path):
    """It was dropped as a header, and later row numbers were off by one."""
    (tmp_path / "x.csv").write_text("1,2,,4,5\n1,2,3,4,5\n")
    err = user_error(invoke(lstm[0], tmp_path / "x.csv"))
    assert "at line 1, column 3" in err, err
    (tmp_path / "h.csv").write_text("a,b,c,d,e\n1,2,3,4,5\n1,2,3,,5\n")
    err = user_error(invoke(lstm[0], tmp_path / "h.csv"))
    assert "at line 3, column 4" in err, err
    (tmp_path / "ok.csv").write_text("1,2,3,4,5\n1,2,3,4,5\n")
    res = invoke(lstm[0], tmp_path / "ok.csv", "--json", "-")
    assert res.exit_code == 0 and json.loads(res.stdout)["input_shape"] == [1, 2, 5], res.output


def _failing_at_run_time(src, dst):
    """``src`` whose output is reshaped by a shape that grows by 1 when an input value exceeds
    100: onnxruntime fails inside the graph on such inputs (no shape inference can see it)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    for node in graph.node:
        node.output[:] = ["y/inner" if o == "y" else o for o in node.output]
    graph.initializer.append(numpy_helper.from_array(np.array(100.0, np.float32), "y/limit"))
    graph.node.extend(
        [
            helper.make_node("Shape", ["y/inner"], ["y/shape"]),
            helper.make_node("ReduceMax", ["x"], ["y/max"], keepdims=0),
            helper.make_node("Greater", ["y/max", "y/limit"], ["y/over"]),
            helper.make_node("Cast", ["y/over"], ["y/grow"], to=TensorProto.INT64),
            helper.make_node("Add", ["y/shape", "y/grow"], ["y/new_shape"]),
            helper.make_node("Reshape", ["y/inner", "y/new_shape"], ["y"]),
        ]
    )
    onnx.save(model, str(dst))
    return dst


def test_a_model_failing_at_run_time_is_one_line(lstm, tmp_path):
    """It was reported as an internal rnnx error (traceback, exit 1)."""
    path = _failing_at_run_time(lstm[0], tmp_path / "bad.onnx")
    np.save(tmp_path / "ok.npy", np.zeros((6, 5), np.float32))
    assert invoke(path, tmp_path / "ok.npy").exit_code == 0  # the model itself is fine
    np.save(tmp_path / "x.npy", np.full((6, 5), 1000.0, np.float32))
    err = user_error(invoke(path, tmp_path / "x.npy", "--chunk", "6"))
    assert re.search(r"Error: MODEL .*bad\.onnx failed at run time on INPUT .*x\.npy \(", err), err


def test_a_fifo_given_as_the_model_is_named_a_fifo(tmp_path):
    import os

    os.mkfifo(tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", np.zeros((3, 5), np.float32))
    err = user_error(invoke(tmp_path / "m.onnx", tmp_path / "x.npy"))
    assert "expected an ONNX file, got a FIFO (named pipe)" in err, err


def test_a_plain_export_is_told_the_cli_routes_not_python_syntax(tmp_path):
    from tests.foreign import FEATURES, PlainRNN, export_plain

    src = export_plain(PlainRNN("gru"), (torch.zeros(2, 5, FEATURES),), tmp_path / "plain.onnx", dynamo=False)
    np.save(tmp_path / "x.npy", np.zeros((4, FEATURES), np.float32))
    line = user_error(CliRunner().invoke(main, ["run", str(src), str(tmp_path / "x.npy")]))
    assert "--state-map IN=OUT" in line and "rnnx stateful MODEL --out" in line, line


def test_a_csv_with_a_timestamp_column_is_told_and_read_with_columns(lstm, tmp_path):
    path, model = lstm
    x = sequence(model, 1, 6)[0]  # (T, F)
    features = x.shape[1]
    names = [f"f{i}" for i in range(features)]
    stamped = tmp_path / "stamped.csv"
    stamped.write_text(
        "time,"
        + ",".join(names)
        + "\n"
        + "".join(f"2024-01-01 00:0{t},{','.join(f'{v:.8f}' for v in row)}\n" for t, row in enumerate(x))
    )
    unix = tmp_path / "unix.csv"
    unix.write_text(
        "time,"
        + ",".join(names)
        + "\n"
        + "".join(f"{1700000000 + 60 * t},{','.join(f'{v:.8f}' for v in row)}\n" for t, row in enumerate(x))
    )
    runner = CliRunner()
    line = user_error(runner.invoke(main, ["run", str(path), str(stamped)]))
    assert "could not convert string '2024-01-01 00:00'" in line and "--columns A,B,..." in line, line
    line = user_error(runner.invoke(main, ["run", str(path), str(unix)]))
    assert f"expected {features} feature columns, got {features + 1} (header: time," in line, line
    want = None
    for src, cols in ((stamped, ",".join(names)), (unix, ",".join(str(i + 1) for i in range(features)))):
        res = runner.invoke(main, ["run", str(path), str(src), "--columns", cols, "--out", str(tmp_path / "y.npy")])
        assert res.exit_code == 0, res.output
        y = np.load(tmp_path / "y.npy")
        want = y if want is None else want
        np.testing.assert_allclose(y, want, atol=1e-6)
    np.testing.assert_allclose(want[0], reference(model, x[None])[0], atol=1e-4)
    line = user_error(runner.invoke(main, ["run", str(path), str(stamped), "--columns", "f0,nope"]))
    assert "--columns: 'nope' is neither a column of stamped.csv" in line
