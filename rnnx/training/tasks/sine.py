"""``sine``: next-value regression on sine waves of random phase and frequency.

Each stream is ``sin(2*pi*f*t + phase)`` with its own frequency ``f`` (cycles per step)
and phase; at every step the model reads the current value and predicts the next one.
Baseline: persistence (the next value equals the current one). Also closed-loop
generation: after a warm-up on true values, the model's predictions are fed back as
its inputs, plotted against the truth.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnx.training.config import TrainConfig, require
from rnnx.training.tasks.base import Split, Task, TaskData, init_state, model_options, stream

FREQ_RANGE = (1 / 40, 1 / 12)  # cycles per step
STEPS = 160  # steps per stream
WARMUP = 40  # closed loop: steps of true input before predictions are fed back
INPUT_NOISE = 0.03  # training inputs only: noise that teaches the model to correct its own errors (closed loop)


def sine_streams(n: int, steps: int, gen: torch.Generator) -> Tensor:
    """``n`` sine waves of ``steps + 1`` samples, random frequency and phase: (n, steps + 1)."""
    freq = FREQ_RANGE[0] + (FREQ_RANGE[1] - FREQ_RANGE[0]) * torch.rand(n, 1, generator=gen)
    phase = 2 * math.pi * torch.rand(n, 1, generator=gen)
    t = torch.arange(steps + 1, dtype=torch.float32)
    return torch.sin(2 * math.pi * freq * t + phase)  # (n, steps + 1)


def _split(n: int, gen: torch.Generator, noise: float = 0.0) -> Split:
    wave = sine_streams(n, STEPS, gen).unsqueeze(-1)  # (n, STEPS + 1, 1)
    x = wave[:, :-1] + noise * torch.randn(n, STEPS, 1, generator=gen)
    return Split(x=x, y=wave[:, 1:])


@torch.no_grad()
def closed_loop(model: nn.Module, x: Tensor, warmup: int) -> Tensor:
    """Warm up on ``x[:, :warmup]``, then feed predictions back for the remaining steps.

    Args:
        model: a trained model mapping (B, T, 1) -> (B, T, 1).
        x: true inputs (B, T, 1).
        warmup: steps of true input.

    Returns:
        Generated values (B, T - warmup, 1); item ``k`` predicts ``x[:, warmup + k]``
        (the target ``y[:, warmup - 1 + k]``).
    """
    model.eval()
    y, state = model(x[:, :warmup], init_state(model, x.shape[0]))
    out = [y[:, -1:]]
    for _ in range(x.shape[1] - warmup - 1):
        y, state = model(out[-1], state)
        out.append(y)
    return torch.cat(out, dim=1)  # (B, T - warmup, 1)


class SineTask(Task):
    """Next value of a sine wave; closed-loop generation as a bonus metric."""

    name = "sine"
    defaults = {
        "model": "lstm",
        "hidden_size": 32,
        "num_layers": 1,
        "epochs": 120,
        "lr": 0.01,
        "batch_size": 16,
        "patience": 20,
        "window": 20,
    }

    def prepare(self, cfg: TrainConfig, gen: torch.Generator) -> TaskData:
        n = max(4, round(64 * cfg.size))
        train, val, test = _split(n, gen, INPUT_NOISE), _split(max(2, n // 4), gen), _split(max(2, n // 4), gen)
        opts = model_options(cfg, input_size=1, output_size=1)
        info = {"input": "current value (B, T, 1)", "output": "next value (B, T, 1)"}
        return TaskData(train=train, val=val, test=test, model=opts, window=require(cfg.window, "window"), info=info)

    def baseline(self, split: Split) -> float:
        """Persistence MAE: predict that the next value equals the current one."""
        s = split.warmup
        return (split.x[:, s:] - split.y[:, s:]).abs().mean().item()

    def extra_metrics(self, model: nn.Module, data: TaskData) -> dict[str, float]:
        """``closed_loop_mae``: feeding predictions back for 40 steps after a 40-step warm-up."""
        x = data.test.x.cpu()
        gen = closed_loop(_cpu_model(model), x[:, : 2 * WARMUP + 1], WARMUP)
        truth = data.test.y[:, WARMUP - 1 : 2 * WARMUP]
        return {"closed_loop_mae": (gen - truth).abs().mean().item(), "closed_loop_steps": float(WARMUP + 1)}

    def plot(self, model: nn.Module, data: TaskData, path: str) -> None:
        from rnnx.training import plots

        model = _cpu_model(model)
        x, y = data.test.x[:1], data.test.y[:1]
        one_step = stream(model, Split(x=x, y=y))[0, :, 0]
        gen = closed_loop(model, x, WARMUP)[0, :, 0]
        loop = torch.full_like(one_step, float("nan"))
        loop[WARMUP - 1 : WARMUP - 1 + len(gen)] = gen
        plots.series(
            path,
            f"sine: one-step and closed-loop (after {WARMUP} steps) predictions",
            {"truth": y[0, :, 0].numpy(), "one-step prediction": one_step.numpy(), "closed loop": loop.numpy()},
            ylabel="sine value (unitless amplitude)",
        )


def _cpu_model(model: nn.Module) -> nn.Module:
    return model.cpu().eval()
