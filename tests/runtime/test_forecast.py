"""ForecastSession / ForecastStream: the generated sequence equals eager for any window
length, batch and step count; the streaming window; every error path leaves state as it was."""

from __future__ import annotations

import os
import shutil
import threading

import numpy as np
import pytest
import torch

from rnnx.errors import ClosedError, ConfigError, DTypeError, ModelFileError, ShapeError, SpecError, StateError
from rnnx.exporter import export_onnx, export_seq2seq
from rnnx.runtime import ForecastSession
from tests.zoo import S2S_HORIZON, S2S_INPUT, S2S_WINDOW, SEQ2SEQ, TINY

TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """(bundle folder, eager model) of the attention + residual + normalised seq2seq, exported once."""
    model = SEQ2SEQ["s2s-lstm-2l-attn-norm-residual"]()
    out = tmp_path_factory.mktemp("forecast") / "bundle"
    export_seq2seq(model, out, check=False)
    return out, model


def _eager(model, x: np.ndarray, steps: int) -> np.ndarray:
    with torch.no_grad():
        return model.forecast(torch.from_numpy(x), steps).numpy()


def _rows(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize(
    "batch,window,steps",
    [(1, 1, 1), (3, 2, S2S_HORIZON), (1, 9, 8), (4, 17, 2)],
    ids=["b1-T1-s1", "b3-T2-horizon", "b1-T9-s8", "b4-T17-s2"],
)
def test_forecast_equals_eager(bundle, batch, window, steps):
    path, model = bundle
    x = _rows(batch, window, S2S_INPUT)
    np.testing.assert_allclose(ForecastSession(path).forecast(x, steps), _eager(model, x, steps), **TOL)


def test_defaults_unbatched_and_either_file_opens_the_bundle(bundle):
    path, model = bundle
    x = _rows(5, S2S_INPUT)
    ref = _eager(model, x[None], S2S_HORIZON)[0]
    for where in (path, path / "encoder.onnx", path / "decoder.onnx"):
        sess = ForecastSession(where)
        assert (sess.horizon, sess.window) == (S2S_HORIZON, S2S_WINDOW)
        np.testing.assert_allclose(sess.forecast(x), ref, **TOL)  # (T, F) -> (steps, O)
    np.testing.assert_allclose(sess.forecast(x.astype(np.float64)), ref, **TOL)  # floats converted


def test_stream_re_encodes_the_last_window(bundle):
    path, model = bundle
    sess = ForecastSession(path)
    stream = sess.stream(batch_size=2)
    x = _rows(2, S2S_WINDOW + 4, S2S_INPUT)
    for t in range(x.shape[1]):
        stream.push(x[:, t])
        ref = _eager(model, x[:, max(0, t + 1 - S2S_WINDOW) : t + 1], 4)
        np.testing.assert_allclose(stream.forecast(4), ref, **TOL)
    assert stream.rows.shape == (2, S2S_WINDOW, S2S_INPUT)
    chunked = sess.stream(batch_size=2)
    chunked.push(x[:, :3])
    chunked.push(x[:, 3:])  # (B, T, F) chunks keep the same window
    np.testing.assert_allclose(chunked.forecast(), stream.forecast(), **TOL)
    one = sess.stream(window=3)
    for row in x[0]:
        one.push(row)  # (F,) rows for batch 1
    np.testing.assert_allclose(one.forecast(), _eager(model, x[:1, -3:], S2S_HORIZON), **TOL)
    one.reset()
    with pytest.raises(StateError, match=r"forecast: no rows pushed yet"):
        one.forecast()


def test_bad_input_names_what_was_expected_and_changes_nothing(bundle):
    path, _ = bundle
    sess = ForecastSession(path)
    with pytest.raises(ShapeError, match=r"x: expected shape \(batch, T, 4\) or \(T, 4\), got \(2, 5, 3\)"):
        sess.forecast(_rows(2, 5, 3))
    with pytest.raises(ShapeError, match=r"x: expected at least one row"):
        sess.forecast(np.zeros((2, 0, S2S_INPUT), np.float32))
    with pytest.raises(DTypeError, match=r"x: expected dtype float32, got int64"):
        sess.forecast(np.zeros((1, 3, S2S_INPUT), np.int64))
    for steps in (0, -1, 2.5, True, 10**9):
        with pytest.raises(ConfigError, match=r"steps: expected an int from 1 to 100000"):
            sess.forecast(_rows(1, 3, S2S_INPUT), steps)
    stream = sess.stream(batch_size=2)
    stream.push(_rows(2, S2S_INPUT))
    before = stream.rows
    with pytest.raises(ShapeError, match=r"x: expected rows of shape \(2, 4\) or \(2, T, 4\), got \(3, 4\)"):
        stream.push(_rows(3, S2S_INPUT))
    with pytest.raises(ShapeError, match=r"got \(4,\)"):
        stream.push(_rows(S2S_INPUT))  # a bare row only for batch 1
    np.testing.assert_array_equal(stream.rows, before)
    with pytest.raises(ConfigError, match=r"window: expected an int >= 1, got 0"):
        sess.stream(window=0)
    with pytest.raises(ConfigError, match=r"batch_size: expected an int >= 1, got 0"):  # as StreamingSession's
        sess.stream(batch_size=0)


def test_standalone_model_and_foreign_folder_are_refused(tmp_path):
    export_onnx(TINY["gru-1l"](), tmp_path / "plain" / "model.onnx")
    with pytest.raises(ModelFileError, match=r"expected a seq2seq bundle file .* open it with StreamingSession"):
        ForecastSession(tmp_path / "plain")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match=r"found no .onnx file"):
        ForecastSession(tmp_path / "empty")


def test_files_from_two_exports_are_refused(bundle, tmp_path):
    path, _ = bundle
    export_seq2seq(SEQ2SEQ["s2s-gru-attn"](), tmp_path / "other", check=False)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(path / "encoder.onnx", mixed / "encoder.onnx")
    shutil.copy(tmp_path / "other" / "decoder.onnx", mixed / "decoder.onnx")
    with pytest.raises(SpecError, match=r"encoder_sha256: the decoder expects encoder\.onnx"):
        ForecastSession(mixed)  # the decoder records its encoder's SHA-256


def test_close_frees_the_session_and_later_calls_say_so(bundle):
    path, _ = bundle
    with ForecastSession(path, threads=1) as sess:
        stream = sess.stream()
        stream.push(_rows(S2S_INPUT))
        assert stream.forecast().shape == (1, S2S_HORIZON, 2)
    with pytest.raises(ClosedError, match=r"forecast: the ForecastSession is closed"):
        stream.forecast()
    sess.close()  # idempotent


def test_an_encoder_of_another_export_of_the_same_model_is_refused(bundle, tmp_path):
    """b's encoder.onnx copied over a's opened silently and forecast values matching neither
    model: the decoder (written last) records its encoder's SHA-256, checked at open."""
    path, model = bundle
    other = SEQ2SEQ["s2s-lstm-2l-attn-norm-residual"]()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.01)
    export_seq2seq(other, tmp_path / "b", check=False)
    mixed = shutil.copytree(path, tmp_path / "mixed")
    shutil.copy(tmp_path / "b" / "encoder.onnx", mixed / "encoder.onnx")
    for opened in (mixed, mixed / "decoder.onnx", mixed / "encoder.onnx"):
        with pytest.raises(SpecError, match=r"seq2seq\.encoder_sha256: the decoder expects encoder\.onnx to have"):
            ForecastSession(opened)
    with ForecastSession(path) as sess:  # the untouched bundle still opens
        assert sess.forecast(_rows(1, S2S_WINDOW, S2S_INPUT), steps=2).shape[1] == 2


def test_an_encoder_that_is_a_fifo_is_refused_without_blocking(bundle, tmp_path):
    """The encoder's SHA-256 check read encoder.onnx with a plain open(): a FIFO there blocked
    ForecastSession forever, waiting for a writer. It is refused like the step graph's FIFO."""
    path, _ = bundle
    folder = tmp_path / "fifo"
    folder.mkdir()
    shutil.copy(path / "decoder.onnx", folder / "decoder.onnx")
    os.mkfifo(folder / "encoder.onnx")
    outcome: list[BaseException | None] = []

    def open_it() -> None:
        try:
            ForecastSession(folder)
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            outcome.append(e)

    t = threading.Thread(target=open_it, daemon=True)
    t.start()
    t.join(timeout=10)
    if t.is_alive():  # blocked in open(): give it a writer, so the thread (and the test) ends
        with open(folder / "encoder.onnx", "wb"):
            pass
        t.join(timeout=30)
        pytest.fail("ForecastSession blocked on an encoder.onnx that is a FIFO")
    (error,) = outcome
    assert isinstance(error, ModelFileError), error
    assert str(error) == f"{folder / 'encoder.onnx'}: expected a regular file, got a FIFO (named pipe)"


@pytest.mark.parametrize("role", ["encoder", "decoder"])
def test_stepping_a_bundle_file_says_it_is_a_seq2seq_part_not_bidirectional(bundle, role):
    from rnnx.errors import NotStreamableError
    from rnnx.runtime import StreamingSession, StreamPool

    folder, _ = bundle
    match = rf"not streamable \(the {role} of a seq2seq bundle, .*ForecastSession"
    with pytest.raises(NotStreamableError, match=match):
        StreamPool(folder / f"{role}.onnx")
    session = StreamingSession(folder / f"{role}.onnx")
    with pytest.raises(NotStreamableError, match=match) as info:
        session.step(np.zeros((1, 1), np.float32))
    assert "bidirectional" not in str(info.value)


def test_a_reexport_never_changes_the_encoder_the_old_decoder_reads(bundle, tmp_path):
    """The encoder went first over encoder.onnx: a kill before the decoder left a bundle that
    could not open. Now a different encoder lands beside the old one until the decoder commits."""
    path, model = bundle
    folder = shutil.copytree(path, tmp_path / "bundle")
    other = SEQ2SEQ["s2s-lstm-2l-attn-norm-residual"]()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.01)
    done = export_seq2seq(other, folder, check=False)
    assert done.encoder.name.startswith("encoder.") and done.encoder.name != "encoder.onnx"
    assert sorted(p.name for p in folder.iterdir()) == sorted(["decoder.onnx", done.encoder.name])
    x = _rows(1, S2S_WINDOW, S2S_INPUT)
    with ForecastSession(folder) as sess:
        np.testing.assert_allclose(sess.forecast(x, steps=2), _eager(other, x, 2), atol=1e-4)
