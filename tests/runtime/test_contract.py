"""The runtime contract: foreign ONNX models (state_map, constants, left context, shapes) and
rnnx.spec checked against the graph."""

from __future__ import annotations

import numpy as np
import pytest

from rnnx.errors import ConfigError, DTypeError, ShapeError, SpecError, StateError
from rnnx.runtime import CONTEXT_KEY, ForeignModel, StreamingSession, StreamPool
from tests.runtime.conftest import FOREIGN_H, FOREIGN_K, FOREIGN_N, ForeignReference, export_foreign

MAP = {"state": "stateN"}
SR = {"sr": np.array(16000)}


def chunks(batch: int, count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((batch, FOREIGN_N)).astype(np.float32) for _ in range(count)]


@pytest.mark.parametrize("batch", [1, 2], ids=["b1", "b2"])
def test_foreign_model_matches_its_python_wrapper(foreign, batch):
    path, model = foreign
    ref = ForeignReference(model, batch)
    sess = StreamingSession(path, state_map=MAP, constants=SR, context=FOREIGN_K, batch_size=batch)
    for x in chunks(batch, 6):
        np.testing.assert_allclose(sess.step(x), ref(x), atol=1e-5)
    assert sess.get_state()["state"].shape == (2, batch, FOREIGN_H)
    np.testing.assert_array_equal(sess.get_state()[CONTEXT_KEY], ref.ctx.numpy())


def test_one_foreign_model_object_carries_the_options_to_session_and_pool(foreign):
    """ForeignModel(...) runs the file as the four keyword shortcuts do, in a session and a pool."""
    path, model = foreign
    vad = ForeignModel(state_map=MAP, constants=SR, context=FOREIGN_K)
    ref = ForeignReference(model, 1)
    xs = chunks(1, 4)
    with StreamingSession(path, foreign=vad) as sess, StreamPool(path, foreign=vad) as pool:
        pool.open("a")
        for x in xs:
            want = ref(x)
            np.testing.assert_allclose(sess.step(x), want, atol=1e-5)
            np.testing.assert_allclose(pool.step_many({"a": x[0]})["a"], want[0], atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"foreign": ForeignModel(state_map=MAP), "context": FOREIGN_K},
            "foreign: pass context inside the ForeignModel, not beside it",
        ),
        ({"foreign": {"state_map": MAP}}, "foreign: expected a ForeignModel, got dict"),
    ],
    ids=["both", "wrong-type"],
)
def test_foreign_model_and_shortcuts_do_not_mix(foreign, kwargs, match):
    path, _ = foreign
    with pytest.raises(ConfigError, match=match):
        StreamingSession(path, **kwargs)


def test_foreign_feed_steps_through_axis_one(foreign):
    path, model = foreign
    xs = chunks(1, 4)
    ref = ForeignReference(model, 1)
    want = np.stack([ref(x) for x in xs], axis=1)
    sess = StreamingSession(path, state_map=MAP, constants=SR, context=FOREIGN_K)
    np.testing.assert_allclose(sess.feed(np.stack(xs, axis=1)), want, atol=1e-5)


def test_reset_clears_the_left_context(foreign):
    path, model = foreign
    x = chunks(1, 1)[0]
    sess = StreamingSession(path, state_map=MAP, constants=SR, context=FOREIGN_K)
    first = sess.step(x)
    sess.step(x)
    sess.reset()
    assert not sess.get_state()[CONTEXT_KEY].any()
    np.testing.assert_array_equal(sess.step(x), first)


def test_foreign_state_round_trips_with_context(foreign, tmp_path):
    path, _ = foreign
    xs = chunks(1, 4)
    sess = StreamingSession(path, state_map=MAP, constants=SR, context=FOREIGN_K)
    sess.step(xs[0])
    sess.save_state(tmp_path / "vad.npz")
    want = [sess.step(x) for x in xs[1:]]
    other = StreamingSession(path, state_map=MAP, constants=SR, context=FOREIGN_K)
    other.load_state(tmp_path / "vad.npz")
    for x, y in zip(xs[1:], want):
        np.testing.assert_array_equal(other.step(x), y)


def test_foreign_run_uses_zero_state_and_context(foreign):
    path, model = foreign
    x = chunks(3, 1)[0]
    sess = StreamingSession(path, state_map=MAP, constants=SR, context=FOREIGN_K)
    np.testing.assert_allclose(sess.run(x), ForeignReference(model, 3)(x), atol=1e-5)


def test_foreign_input_validation_accounts_for_context(foreign):
    path, _ = foreign
    sess = StreamingSession(path, state_map=MAP, constants=SR, context=FOREIGN_K)
    with pytest.raises(
        ShapeError, match=rf"input: expected shape \(1, {FOREIGN_N}\) \(batch, features\), got \(1, 12\)"
    ):
        sess.step(np.zeros((1, FOREIGN_N + FOREIGN_K), np.float32))


def test_constants_of_another_int_type_are_converted(foreign):
    path, model = foreign
    x = chunks(1, 1)[0]
    sess = StreamingSession(path, state_map=MAP, constants={"sr": np.int32(8000)}, context=FOREIGN_K)
    np.testing.assert_allclose(sess.step(x), ForeignReference(model, 1, sr=8000)(x), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"state_map": {"nope": "stateN"}, "constants": SR}, SpecError, r"state_map: 'nope' is not a graph input"),
        (
            {"state_map": {"state": "nope"}, "constants": SR},
            SpecError,
            r"state_map\['state'\]: 'nope' is not a graph output",
        ),
        ({"state_map": MAP}, SpecError, r"expected exactly one data input .* got \['input', 'sr'\]"),
        ({"state_map": MAP, "constants": {"rate": 1}}, SpecError, r"constants: 'rate' is not a graph input"),
        ({"state_map": MAP, "constants": {"sr": np.array(1.5)}}, DTypeError, "sr: expected dtype int64, got float64"),
        (
            {"state_map": MAP, "constants": SR, "state_shapes": {"x": (1, "batch")}},
            SpecError,
            "state_shapes: 'x' is not a state input",
        ),
        (
            {"state_map": MAP, "constants": SR, "state_shapes": {"state": (2, 1, 16)}},
            StateError,
            r"expected ints and one 'batch'",
        ),
    ],
    ids=[
        "bad-state-input",
        "bad-state-output",
        "two-data-inputs",
        "bad-constant",
        "constant-dtype",
        "shape-unknown-name",
        "shape-without-batch",
    ],
)
def test_bad_state_maps_are_explained(foreign, kwargs, error, match):
    path, _ = foreign
    with pytest.raises(error, match=match):
        StreamingSession(path, **kwargs)


@pytest.fixture(scope="module")
def static_foreign(tmp_path_factory, foreign):
    """The foreign model exported with fully static shapes: the batch axis is ambiguous."""
    _, model = foreign
    return export_foreign(model, tmp_path_factory.mktemp("static") / "static.onnx", dynamic_batch=False), model


def test_ambiguous_state_shape_asks_for_state_shapes(static_foreign):
    path, _ = static_foreign
    with pytest.raises(StateError, match=r"state: cannot tell the batch axis .* pass state_shapes="):
        StreamingSession(path, state_map=MAP, constants=SR)


def test_state_shapes_resolves_the_ambiguity(static_foreign):
    path, model = static_foreign
    x = chunks(1, 1)[0]
    sess = StreamingSession(
        path, state_map=MAP, constants=SR, context=FOREIGN_K, state_shapes={"state": (2, "batch", FOREIGN_H)}
    )
    np.testing.assert_allclose(sess.step(x), ForeignReference(model, 1)(x), atol=1e-5)


def test_output_shape_is_known_only_for_concrete_rnnx_outputs():
    from rnnx.runtime.contract import Contract, DataIO

    f32 = np.dtype(np.float32)
    x = DataIO("x", (None, None, 3), 0, 1, f32)
    y = DataIO("y", (None, None, 2), 0, 1, f32)
    assert Contract(x, y, ()).output_shape(4, 7) == (4, 7, 2)
    assert Contract(x, y, ()).output_shape(1) == (1, 1, 2)
    symbolic = DataIO("y", (None, None, None), 0, 1, f32)
    assert Contract(x, symbolic, ()).output_shape(4) is None
    assert Contract(x, y, (), foreign=True).output_shape(4) is None


# -- rnnx.spec checked against the graph at construction ------------------------------------


def _tampered(src, dst, edit):
    """Copy the ONNX file ``src`` to ``dst`` with its rnnx.spec JSON changed by ``edit(dict)``."""
    import json

    import onnx

    model = onnx.load(str(src))
    for prop in model.metadata_props:
        if prop.key == "rnnx.spec":
            spec = json.loads(prop.value)
            edit(spec)
            prop.value = json.dumps(spec)
    onnx.save(model, str(dst))
    return dst


def _set(path, value):
    def edit(spec):
        node = spec
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


@pytest.mark.parametrize(
    "edit, match",
    [
        (
            _set(("state", 0, "shape"), [2, "batch", 10**12]),
            r"rnnx.spec.state\[0\].shape: expected at most \d+ elements per stream, got \[2, 'batch', 1000000000000\]",
        ),
        (_set(("input", "shape"), ["batch", "time", 10**10]), r"rnnx.spec.input.shape: expected at most"),
        (
            _set(("state", 0, "shape"), [2, "batch", 9]),
            r"rnnx.spec.state\[0\].shape\[2\]: expected 8 \(the graph's 'h_in' is \[2, '.*', 8\]\), got 9",
        ),
        (_set(("state", 1, "shape"), ["batch", 8]), r"rnnx.spec.state\[1\].shape: expected rank 3"),
        (
            _set(("state", 0, "dtype"), "float64"),
            r"rnnx.spec.state\[0\].dtype: expected float32 \(the graph's 'h_in'\), got float64",
        ),
        (_set(("input", "dtype"), "int64"), r"rnnx.spec.input.dtype: expected float32"),
        (_set(("output", "name"), "nope"), r"rnnx.spec: graph has no output 'nope'"),
        (_set(("state", 0, "input"), "h_typo"), r"rnnx.spec: graph has no input 'h_typo'"),
        (_set(("input", "shape"), ["batch", "time", 6]), r"rnnx.spec.input.shape\[2\]: expected 5"),
    ],
    ids=[
        "huge-state",
        "huge-input",
        "state-dim",
        "state-rank",
        "state-dtype",
        "input-dtype",
        "output-name",
        "state-name",
        "input-features",
    ],
)
def test_spec_that_disagrees_with_the_graph_fails_at_construction(onnx_file, tmp_path, edit, match):
    path, _ = onnx_file("lstm-2l")
    bad = _tampered(path, tmp_path / "bad.onnx", edit)
    with pytest.raises(SpecError, match=match):
        StreamingSession(bad)
    with pytest.raises(SpecError, match=match):
        StreamPool(bad)


def test_a_batch_axis_the_graph_fixes_is_refused(onnx_file, tmp_path):
    import onnx

    path, _ = onnx_file("gru-1l")
    model = onnx.load(str(path))
    for value in list(model.graph.input) + list(model.graph.output):
        value.type.tensor_type.shape.dim[0 if value.name in ("x", "y") else 1].dim_value = 2
    onnx.save(model, str(tmp_path / "fixed.onnx"))
    with pytest.raises(SpecError, match=r"rnnx.spec.input: axis 0 is the batch axis, but the graph fixes it at 2"):
        StreamingSession(tmp_path / "fixed.onnx")


def test_foreign_model_is_lowered_into_a_model_spec(foreign):
    path, _ = foreign
    with StreamingSession(path, state_map=MAP, constants=SR, context=FOREIGN_K) as sess:
        spec = sess.spec
        assert spec.kind == "foreign" and spec.input.name == "input" and spec.output.name == "output"
        assert [(s.input, s.output, s.shape) for s in spec.state] == [("state", "stateN", (2, "batch", FOREIGN_H))]
