"""Multivariate series -> next ``horizon`` values of one column, streamed.

Shared by ``forecast`` (generated series) and ``--csv`` (the user's). Streaming
semantics: at step ``t`` the model reads the feature row ``x[t]`` (raw units, the
target column usually among the features) and outputs the forecast
``[target[t+1], ..., target[t+horizon]]``. Its state summarises every earlier row, so
there is no fixed input window at deployment: ``window`` is the truncated-BPTT length
in training and the warm-up context (rows before a split's start, fed but not scored)
in evaluation.

The series is split by time, never shuffled: the first 70% of rows train, the next
15% validate, the last 15% test; a step belongs to a part only if its whole forecast
does. Normalisation statistics come from the training rows only and go into the
model's ``normalize`` buffers, so the model (and its export) takes and returns raw units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rnnx.errors import ConfigError
from rnnx.training.config import TrainConfig, require
from rnnx.training.tasks.base import Split, Task, TaskData, model_options, stream

FRACTIONS = (0.70, 0.15)  # train, validation; the rest is the test part


@dataclass
class SeriesSpec:
    """A named multivariate series and what to forecast."""

    values: np.ndarray  # (N, F) float rows in time order, raw units
    features: list[str]  # names of the F columns
    target: str  # the forecast column (need not be a feature)
    target_values: np.ndarray  # (N,) the target column, raw units
    note: str = ""  # what was done to the data on loading (e.g. missing values filled), for the user


def boundaries(n: int) -> tuple[int, int]:
    """Row indices where validation and test start for a series of ``n`` rows."""
    return int(n * FRACTIONS[0]), int(n * (FRACTIONS[0] + FRACTIONS[1]))


def check_lengths(n: int, window: int, horizon: int) -> None:
    """Raise ConfigError if the parts of an ``n``-row series are too short."""
    v, t = boundaries(n)
    parts = {"train": v, "validation": t - v, "test": n - t}
    short = {k: m for k, m in parts.items() if m < window + horizon}
    if short or window + horizon > n:
        sizes = "/".join(str(m) for m in parts.values())
        raise ConfigError(
            f"--window {window} + --horizon {horizon}: too long for the series of {n} rows; each of the "
            f"train/validation/test parts ({sizes} rows) needs at least window + horizon = {window + horizon} rows"
        )


def make_splits(spec: SeriesSpec, window: int, horizon: int) -> tuple[Split, Split, Split]:
    """Time-ordered train/validation/test streams (one stream each)."""
    n = len(spec.values)
    check_lengths(n, window, horizon)
    x = torch.tensor(spec.values, dtype=torch.float32)  # (N, F)
    tv = torch.tensor(spec.target_values, dtype=torch.float32)
    y = torch.stack([tv[k + 1 : n - horizon + k + 1] for k in range(horizon)], dim=-1)  # (N - H, H)
    v, t = boundaries(n)

    def part(start: int, stop: int, warmup: int) -> Split:
        s = start - warmup
        return Split(x=x[s : stop - horizon][None], y=y[s : stop - horizon][None], warmup=warmup)

    return part(0, v, 0), part(v, t, window), part(t, n, window)


def statistics(
    spec: SeriesSpec, horizon: int, residual: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """in_mean, in_std, out_mean, out_std from the training rows only (std floored).

    With ``residual`` the outputs are the changes ``target[t+k] - target[t]`` (k = 1..horizon),
    so their statistics are those of the changes.
    """
    v, _ = boundaries(len(spec.values))
    rows = torch.tensor(spec.values[:v], dtype=torch.float64)
    tgt = torch.tensor(spec.target_values[:v], dtype=torch.float64)
    in_mean, in_std = rows.mean(0), rows.std(0)
    in_std = torch.where(in_std > 1e-8, in_std, torch.ones_like(in_std))
    if residual:
        changes = torch.stack([tgt[k : v - horizon + k] - tgt[: v - horizon] for k in range(1, horizon + 1)], 1)
        out_mean, out_std = changes.mean(0), changes.std(0)  # (H,) each
    else:
        out_mean, out_std = torch.full((horizon,), float(tgt.mean())), torch.full((horizon,), float(tgt.std()))
    out_std = torch.where(out_std > 1e-8, out_std, torch.ones_like(out_std))
    return in_mean.float(), in_std.float(), out_mean.float(), out_std.float()


class SeriesTask(Task):
    """Forecast the next ``horizon`` values of one column from feature rows."""

    def series(self, cfg: TrainConfig, gen: torch.Generator) -> SeriesSpec:  # pragma: no cover - abstract
        raise NotImplementedError

    def prepare(self, cfg: TrainConfig, gen: torch.Generator) -> TaskData:
        spec = self.series(cfg, gen)
        window, horizon = require(cfg.window, "window"), require(cfg.horizon, "horizon")
        train, val, test = make_splits(spec, window, horizon)
        self._persist = spec.features.index(spec.target) if spec.target in spec.features else None
        residual = bool(cfg.residual) and self._persist is not None
        norm = statistics(spec, horizon, residual)
        opts = model_options(
            cfg,
            input_size=len(spec.features),
            output_size=cfg.horizon,
            normalize=True,
            residual_input=self._persist if residual else None,
        )
        loss_scale = norm[3]
        if cfg.model == "seq2seq":  # one value per decoder step, horizon steps from a window of rows
            opts.update(
                output_size=1, horizon=cfg.horizon, window=cfg.window, cell=cfg.cell or "lstm", attention=cfg.attention
            )
            norm = (norm[0], norm[1], norm[2].mean().reshape(1), norm[3].pow(2).mean().sqrt().reshape(1))
        info = {
            "target": spec.target,
            "features": spec.features,
            "horizon": cfg.horizon,
            "input": f"feature rows (B, T, {len(spec.features)}) raw units: {', '.join(spec.features)}",
            "output": f"(B, T, {cfg.horizon}): {spec.target} at t+1..t+{cfg.horizon}, raw units",
            "residual": residual,
        }
        return TaskData(
            train=train,
            val=val,
            test=test,
            model=opts,
            window=window,
            info=info,
            normalization=norm,
            loss_scale=loss_scale,
        )

    def baseline(self, split: Split) -> float:
        """Persistence MAE: every future value equals the target's current value."""
        s = split.warmup
        if self._persist is None:  # target not an input: persistence from the previous step's truth
            last = split.y[:, s - 1 : -1, :1] if s > 0 else split.y[:, :-1, :1]
            return (split.y[:, s + (s == 0) :] - last).abs().mean().item()
        last = split.x[:, s:, self._persist : self._persist + 1]  # (1, T, 1)
        return (split.y[:, s:] - last).abs().mean().item()

    def plot(self, model: nn.Module, data: TaskData, path: str) -> None:
        from rnnx.training import plots

        y = stream(model, data.test)[0]  # (T, H)
        t = data.test.y[0, data.test.warmup :]
        n = min(300, len(t))
        h = t.shape[-1]
        curves = {"truth (t+1)": t[:n, 0].numpy(), "forecast t+1": y[:n, 0].numpy()}
        if h > 1:
            curves[f"forecast t+{h} (shifted to its date)"] = np.concatenate(
                [np.full(h - 1, np.nan), y[: n - h + 1, h - 1].numpy()]
            )
        plots.series(
            path,
            f"{self.name}: {data.info['target']}, test split streamed",
            curves,
            ylabel=f"{data.info['target']} (raw units of the data)",
        )
