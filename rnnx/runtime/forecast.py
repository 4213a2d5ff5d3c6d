"""ForecastSession: run an exported encoder–decoder (seq2seq) bundle on onnxruntime.

The bundle is two ONNX files (``encoder.onnx``, ``decoder.onnx``) that both carry the
same :class:`rnnx.spec.Seq2SeqSpec` under ``rnnx.spec``; it says which encoder output
starts which decoder input and what flows from one decoder step to the next. This
module follows that contract and nothing else: numpy and onnxruntime only.

Example:
    Forecast from a window, then keep a window that slides as rows arrive::

        import numpy as np
        from rnnx.runtime import ForecastSession

        sess = ForecastSession("exported/")                  # the bundle folder (or either file)
        y = sess.forecast(np.random.rand(4, 10, 7).astype(np.float32), steps=5)  # (4, 5, 1)

        stream = sess.stream()                               # batch_size=1, window from the spec
        for row in np.random.rand(30, 7).astype(np.float32):
            stream.push(row)                                 # keeps the last `window` rows
            next_days = stream.forecast()                    # (1, horizon, 1), re-encoded
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any, Union

import numpy as np

from rnnx.atomic import read_regular_file
from rnnx.checks import check_int
from rnnx.errors import ClosedError, ModelFileError, ShapeError, SpecError, StateError
from rnnx.runtime.backend import Backend, open_backend
from rnnx.runtime.options import RuntimeOptions, merge_options
from rnnx.runtime.providers import Providers
from rnnx.runtime.validate import coerce_dtype
from rnnx.spec import METADATA_KEY, ModelSpec, Seq2SeqSpec

PathLike = Union[str, "os.PathLike[str]"]
MAX_STEPS = 100_000  # generated steps per call: bounds the time and memory of one call
MAX_ONNX_BYTES = 2 << 30  # protobuf's limit: an ONNX file without external data is smaller


def _file_spec(backend: Backend, path: Path) -> ModelSpec:
    meta = backend.metadata()
    if METADATA_KEY not in meta:
        raise ModelFileError(
            f"{path}: no {METADATA_KEY!r} metadata; expected a file of a seq2seq "
            f"bundle exported by rnnx (rnnx export CKPT --out DIR)"
        )
    try:
        spec = ModelSpec.from_json(meta[METADATA_KEY])
    except SpecError as e:
        raise SpecError(f"{path}: {e}") from None
    if spec.seq2seq is None:
        raise ModelFileError(
            f"{path}: expected a seq2seq bundle file (role encoder or decoder), got a "
            f"standalone {spec.kind} model; open it with StreamingSession"
        )
    return spec


def _open_bundle(path: PathLike, options: RuntimeOptions) -> dict[str, tuple[Path, Backend, ModelSpec]]:
    """role -> (file, session, spec) for the bundle that ``path`` (folder or either file) names."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.onnx"), key=lambda f: (f.name != "decoder.onnx", f.name))  # the manifest first
        if not files:
            raise ModelFileError(
                f"{p}: expected a seq2seq bundle folder (encoder.onnx, decoder.onnx), found no .onnx file"
            )
        p = files[0]
    backend = open_backend(p, options)
    spec = _file_spec(backend, p)
    bundle = spec.seq2seq
    opened = {spec.role: (p, backend, spec)}
    try:
        for role, name in (("decoder", bundle.decoder), ("encoder", bundle.encoder)):  # type: ignore[union-attr]
            if role not in opened:
                other = p.parent / name
                data = _checked_encoder(other, opened["decoder"][2]) if role == "encoder" else None
                other_backend = open_backend(other, options, data=data)
                opened[role] = (other, other_backend, _file_spec(other_backend, other))
        if "encoder" in opened and opened["encoder"][0] == p:  # opened first: check it against the decoder now
            _checked_encoder(p, opened["decoder"][2])
    except BaseException:
        for _, b, _ in opened.values():
            b.close()
        raise
    return opened


def _checked_encoder(path: Path, decoder: ModelSpec) -> bytes | None:
    """The encoder file's bytes (read once, bounded), checked against the SHA-256 the decoder
    (the bundle's manifest) records; None for bundles written before the field existed."""
    expected = decoder.seq2seq.encoder_sha256 if decoder.seq2seq is not None else None
    if expected is None:
        return None
    data = read_regular_file(path, MAX_ONNX_BYTES, str(path), ModelFileError, " (an ONNX file without external data)")
    if data is None:
        raise ModelFileError(f"{path}: the bundle's encoder is missing")
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise SpecError(
            f"{METADATA_KEY}.seq2seq.encoder_sha256: the decoder expects {path.name} to have "
            f"SHA-256 {expected}, got {digest} (the files come from two different exports, or one "
            f"was altered); re-export the bundle"
        )
    return data


class ForecastSession:
    """Generate forecasts from an exported seq2seq bundle (encoder + decoder-step graphs).

    Holds no per-stream state: :meth:`forecast` is a pure function of its window, and
    :meth:`stream` hands out :class:`ForecastStream` objects that each keep their own
    sliding window. One session serves one thread at a time.

    Args:
        path: the bundle folder, or its encoder or decoder file.
        options: a :class:`~rnnx.runtime.RuntimeOptions` for both graphs (providers,
            threads, optimisation); the keyword shortcuts below override it.
        providers: "cpu", "cuda", "auto" or a list of onnxruntime provider names.
        threads: onnxruntime intra-op threads of each graph.

    Raises:
        ModelFileError: a missing or foreign file, or a file that is not part of a bundle.
        SpecError: the two files disagree on the contract, or it does not match the graphs.
        ProviderError: see :func:`rnnx.runtime.resolve_providers`.
        ConfigError: invalid options.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        options: RuntimeOptions | None = None,
        providers: Providers | None = None,
        threads: int | None = None,
    ) -> None:
        self.options = merge_options(options, providers=providers, threads=threads)
        opened = _open_bundle(path, self.options)
        if set(opened) != {"encoder", "decoder"}:
            found = ", ".join(f"{f.name}: {role}" for role, (f, _, _) in opened.items())
            raise SpecError(f"{path}: expected one encoder and one decoder file, got {found}")
        (enc_path, self.encoder, enc_spec), (dec_path, self.decoder, dec_spec) = opened["encoder"], opened["decoder"]
        bundle = dec_spec.seq2seq
        if bundle is None:
            raise SpecError(f"{dec_path}: expected a seq2seq contract in its {METADATA_KEY}, got none")
        if enc_spec.seq2seq is None or dataclasses.replace(
            enc_spec.seq2seq, encoder=bundle.encoder
        ) != dataclasses.replace(bundle, encoder_sha256=None):  # the decoder names the encoder file
            raise SpecError(
                f"{enc_path.parent}: {enc_path.name} and {dec_path.name} carry different "
                f"seq2seq contracts (files from two different exports?)"
            )
        self.spec: Seq2SeqSpec = bundle
        self.model_spec = dec_spec  # the decoder file's full spec (kind, config, exporter)
        self._check_graphs()
        self._closed = False
        self._features = tuple(int(d) for d in self.spec.input.shape[2:])
        self._dtype = np.dtype(self.spec.input.dtype)
        self._enc_outputs = [t.name for t in self.spec.encoder_outputs]
        self._dec_outputs = [self.spec.output.name, *(s.output for s in self.spec.state)]

    def _check_graphs(self) -> None:
        s = self.spec
        want = {
            "encoder input": ({s.input.name}, {i.name for i in self.encoder.inputs()}),
            "encoder output": ({t.name for t in s.encoder_outputs}, {o.name for o in self.encoder.outputs()}),
            "decoder input": (
                {s.feedback, *(x.input for x in s.state), *(c.name for c in s.context)},
                {i.name for i in self.decoder.inputs()},
            ),
            "decoder output": ({s.output.name, *(x.output for x in s.state)}, {o.name for o in self.decoder.outputs()}),
        }
        for what, (names, graph) in want.items():
            if names != graph:
                raise SpecError(f"{METADATA_KEY}: {what}s: expected {sorted(names)}, the graph has {sorted(graph)}")

    # -- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        """Free both onnxruntime sessions; later calls raise ClosedError. Idempotent."""
        self._closed = True
        self.encoder.close()
        self.decoder.close()

    def __enter__(self) -> ForecastSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- properties ------------------------------------------------------------------
    @property
    def horizon(self) -> int:
        """Steps generated when ``steps`` is not given (the trained horizon)."""
        return self.spec.horizon

    @property
    def window(self) -> int:
        """Rows a :class:`ForecastStream` keeps by default (the trained window)."""
        return self.spec.window

    # -- forecasting -----------------------------------------------------------------
    def forecast(self, x_window: Any, steps: int | None = None) -> np.ndarray:
        """Encode a window of rows and generate ``steps`` outputs.

        Args:
            x_window: ``(batch, T, features)`` rows of any length T >= 1, or ``(T, features)``
                for one sequence.
            steps: how many steps to generate (default: the trained horizon); any
                number from 1 to ``MAX_STEPS``.

        Returns:
            ``(batch, steps, outputs)``, or ``(steps, outputs)`` for an unbatched window.

        Raises:
            ShapeError: wrong rank, feature count, or an empty window.
            DTypeError: a non-float window.
            ConfigError: ``steps`` is not an int from 1 to :data:`MAX_STEPS`.
        """
        steps = self._check_steps(steps)
        x = self._check_window(x_window)
        y = self._generate(x if x.ndim == 3 else x[None], steps)
        return y if x.ndim == 3 else y[0]

    def stream(self, batch_size: int = 1, window: int | None = None) -> ForecastStream:
        """A new :class:`ForecastStream` over this session (``window`` defaults to the trained one)."""
        return ForecastStream(self, batch_size, self.window if window is None else window)

    # -- validation ------------------------------------------------------------------
    def _check_steps(self, steps: int | None) -> int:
        if steps is None:
            return self.horizon
        return check_int("steps", steps, maximum=MAX_STEPS)

    def _check_window(self, x: Any) -> np.ndarray:
        name = self.spec.input.name
        arr = coerce_dtype(name, x, self._dtype)
        feat = ", ".join(str(f) for f in self._features)
        if arr.ndim not in (2, 3) or tuple(arr.shape[arr.ndim - len(self._features) :]) != self._features:
            raise ShapeError(f"{name}: expected shape (batch, T, {feat}) or (T, {feat}), got {arr.shape}")
        if arr.shape[-1 - len(self._features)] == 0 or (arr.ndim == 3 and arr.shape[0] == 0):
            raise ShapeError(f"{name}: expected at least one row and one sequence, got shape {arr.shape}")
        return np.ascontiguousarray(arr)

    # -- compute ---------------------------------------------------------------------
    def _generate(self, x: np.ndarray, steps: int) -> np.ndarray:
        """x (B, T, F) validated -> (B, steps, O): encode once, then run the decoder steps."""
        if self._closed:
            raise ClosedError("forecast: the ForecastSession is closed")
        s = self.spec
        enc = dict(zip(self._enc_outputs, self.encoder.run(self._enc_outputs, {s.input.name: x})))
        feed = {name: enc[src] for name, src in s.init.items()}
        outs = []
        for _ in range(steps):
            y, *new_state = self.decoder.run(self._dec_outputs, feed)
            outs.append(y)
            feed[s.feedback] = y
            for st, value in zip(s.state, new_state):
                feed[st.input] = value
        return np.stack(outs, axis=1)


class ForecastStream:
    """A sliding window of the last rows of ``batch_size`` sequences, re-encoded on demand.

    Rows arrive with :meth:`push`; :meth:`forecast` encodes the rows kept so far (at most
    ``window``; fewer at the start) and generates. A failed call changes nothing.

    Args:
        session: the :class:`ForecastSession` to run.
        batch_size: sequences pushed together.
        window: rows kept (the oldest are dropped).

    Raises:
        ConfigError: ``batch_size`` or ``window`` is not a positive int.
    """

    def __init__(self, session: ForecastSession, batch_size: int = 1, window: int = 1) -> None:
        batch_size, window = check_int("batch_size", batch_size), check_int("window", window)
        self.session, self.batch_size, self.window = session, batch_size, window
        self._rows = np.zeros((batch_size, 0, *session._features), session._dtype)  # (B, <= window, F)

    @property
    def rows(self) -> np.ndarray:
        """A copy of the rows kept, ``(batch, n, features)`` with ``n <= window``."""
        return self._rows.copy()

    def push(self, rows: Any) -> None:
        """Append rows: ``(features,)`` (batch 1), ``(batch, features)`` or ``(batch, T, features)``.

        Raises:
            ShapeError, DTypeError: rows that do not fit the model input or the batch size.
        """
        sess = self.session
        name, f = sess.spec.input.name, sess._features
        arr = coerce_dtype(name, rows, sess._dtype)
        if arr.ndim == len(f) and self.batch_size == 1:
            arr = arr[None, None]
        elif arr.ndim == len(f) + 1:
            arr = arr[:, None]
        feat = ", ".join(str(d) for d in f)
        if arr.ndim != len(f) + 2 or arr.shape[0] != self.batch_size or tuple(arr.shape[2:]) != f:
            one = f"({feat},), " if self.batch_size == 1 else ""
            raise ShapeError(
                f"{name}: expected rows of shape {one}({self.batch_size}, {feat}) or "
                f"({self.batch_size}, T, {feat}), got {np.shape(rows)}"
            )
        self._rows = np.concatenate([self._rows, arr], axis=1)[:, -self.window :]

    def forecast(self, steps: int | None = None) -> np.ndarray:
        """Encode the kept rows and generate: ``(batch, steps, outputs)``.

        Raises:
            StateError: no rows pushed yet.
        """
        steps = self.session._check_steps(steps)
        if self._rows.shape[1] == 0:
            raise StateError("forecast: no rows pushed yet; push(row) at least one row first")
        return self.session._generate(np.ascontiguousarray(self._rows), steps)

    def reset(self) -> None:
        """Drop every kept row (start new sequences)."""
        self._rows = self._rows[:, :0]
