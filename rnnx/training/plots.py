"""Figures of a run: loss curves and predictions against truth (no display needed).

Uses matplotlib's object API (``Figure``) with the Agg canvas, so nothing touches a
global backend or a display.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def new_figure(rows: int = 1, cols: int = 1, size: tuple[float, float] = (8.0, 4.0)) -> tuple[Any, Any]:
    """A Figure on the Agg canvas and its axes (an array when rows*cols > 1)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, tight_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=rows * cols == 1)
    return fig, axes


def loss_curves(history: Sequence[dict[str, float]], path: str, title: str = "", ylabel: str = "loss") -> None:
    """Plot train and validation loss per epoch (log scale) to ``path``."""
    fig, ax = new_figure()
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], label="train (TBPTT windows)")
    ax.plot(epochs, [h["val_loss"] for h in history], label="validation (streamed)")
    if history and min(min(h["train_loss"], h["val_loss"]) for h in history) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title or "loss")
    ax.legend()
    fig.savefig(path, dpi=90)


def series(path: str, title: str, curves: dict[str, np.ndarray], *, ylabel: str, xlabel: str = "time step") -> None:
    """Plot named 1-D curves on one axis (truth first, by convention) to ``path``.

    Both axes are labelled: ``ylabel`` names the quantity and its unit.
    """
    fig, ax = new_figure(size=(10.0, 4.0))
    for i, (name, values) in enumerate(curves.items()):
        ax.plot(np.asarray(values), label=name, lw=2.0 if i == 0 else 1.2, alpha=1.0 if i == 0 else 0.85)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.savefig(path, dpi=90)


def frame_strip(
    path: str,
    rows: dict[str, np.ndarray],
    title: str = "",
    xlabel: str = "successive time steps, each frame x (grid cells) by y (grid cells)",
) -> None:
    """Plot rows of frames ``(N, H, W)`` side by side (one row per name) to ``path``."""
    n = max(len(frames) for frames in rows.values())
    fig, axes = new_figure(len(rows), n, size=(1.3 * n, 1.4 * len(rows) + 0.4))
    vmax = max(float(np.max(np.abs(f))) for f in rows.values()) or 1.0
    for r, (name, frames) in enumerate(rows.items()):
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(frames):
                ax.imshow(frames[c], vmin=0.0, vmax=vmax, cmap="viridis")
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.supxlabel(xlabel, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=80)
