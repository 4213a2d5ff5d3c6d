"""``blobs``: ConvLSTM next-frame prediction of moving blobs on a 2-channel 12x12 grid.

Each channel holds one Gaussian blob moving at its own constant velocity and bouncing
off the walls. At every step the model reads the current frame ``(2, 12, 12)`` and
predicts the next one. Baseline: copy the last frame.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnx.training.config import TrainConfig, require
from rnnx.training.tasks.base import Split, Task, TaskData, model_options, stream

CHANNELS, SIZE = 2, 12  # frame layout (C, H, W) = (2, 12, 12)
STEPS = 24  # frames per stream
SIGMA = 1.3  # blob radius in pixels
SPEED = (0.4, 1.0)  # pixels per step


def blob_streams(n: int, steps: int, gen: torch.Generator) -> Tensor:
    """``n`` streams of ``steps`` frames: (n, steps, 2, 12, 12) in [0, 1]."""
    pos = 2 + (SIZE - 5) * torch.rand(n, CHANNELS, 2, generator=gen)
    angle = 2 * torch.pi * torch.rand(n, CHANNELS, generator=gen)
    speed = SPEED[0] + (SPEED[1] - SPEED[0]) * torch.rand(n, CHANNELS, generator=gen)
    vel = torch.stack([speed * torch.cos(angle), speed * torch.sin(angle)], dim=-1)  # (n, C, 2)
    grid = torch.arange(SIZE, dtype=torch.float32)
    frames = []
    for _ in range(steps):
        dy = (grid[None, None, :] - pos[..., 0:1]) ** 2  # (n, C, H)
        dx = (grid[None, None, :] - pos[..., 1:2]) ** 2  # (n, C, W)
        frames.append(torch.exp(-(dy[..., :, None] + dx[..., None, :]) / (2 * SIGMA**2)))  # (n, C, H, W)
        pos = pos + vel
        low, high = pos < 0, pos > SIZE - 1
        vel = torch.where(low | high, -vel, vel)
        pos = torch.where(low, -pos, torch.where(high, 2 * (SIZE - 1) - pos, pos))
    return torch.stack(frames, dim=1)


def _split(n: int, gen: torch.Generator) -> Split:
    frames = blob_streams(n, STEPS + 1, gen)
    return Split(x=frames[:, :-1], y=frames[:, 1:])


class BlobsTask(Task):
    """Next frame of two bouncing blobs."""

    name = "blobs"
    defaults = {
        "model": "convlstm",
        "hidden_size": 12,
        "num_layers": 1,
        "epochs": 30,
        "lr": 0.02,
        "batch_size": 16,
        "patience": 8,
        "window": 8,
    }

    def prepare(self, cfg: TrainConfig, gen: torch.Generator) -> TaskData:
        n = max(8, round(128 * cfg.size))
        train, val, test = _split(n, gen), _split(max(4, n // 8), gen), _split(max(4, n // 8), gen)
        opts = model_options(cfg, input_size=CHANNELS, output_size=CHANNELS, image_size=(SIZE, SIZE))
        info = {"input": f"frame (B, T, {CHANNELS}, {SIZE}, {SIZE})", "output": "next frame, same shape"}
        return TaskData(train=train, val=val, test=test, model=opts, window=require(cfg.window, "window"), info=info)

    def baseline(self, split: Split) -> float:
        """Copy-last-frame MAE."""
        s = split.warmup
        return (split.x[:, s:] - split.y[:, s:]).abs().mean().item()

    def plot(self, model: nn.Module, data: TaskData, path: str) -> None:
        from rnnx.training import plots

        x, y = data.test.x[:1], data.test.y[:1]
        pred = stream(model, Split(x=x, y=y))[0]  # (T, C, H, W)
        idx = list(range(STEPS - 8, STEPS))
        plots.frame_strip(
            path,
            {
                "truth ch0": y[0, idx, 0].numpy(),
                "predicted ch0": pred[idx, 0].numpy(),
                "truth ch1": y[0, idx, 1].numpy(),
                "predicted ch1": pred[idx, 1].numpy(),
            },
            title="blobs: next-frame predictions (last 8 steps of a test stream)",
        )
