"""Every figure a run writes has labelled axes with units."""

from __future__ import annotations

import pytest

from rnnx.training import TrainConfig, train

pytest.importorskip("matplotlib", reason="plots need the train extra (matplotlib)")


def _labels(monkeypatch) -> list[tuple[str, str]]:
    """Record (xlabel, ylabel) of each saved figure (the figures are still written)."""
    from matplotlib.figure import Figure

    seen: list[tuple[str, str]] = []
    save = Figure.savefig

    def recording(fig, *args, **kwargs):
        for ax in fig.axes:
            if ax.axison and ax.get_xticks().size:
                seen.append((ax.get_xlabel(), ax.get_ylabel()))
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", recording)
    return seen


@pytest.mark.parametrize("task", ["sine", "forecast"])
def test_loss_and_prediction_plots_label_both_axes_with_units(task, tmp_path, monkeypatch):
    seen = _labels(monkeypatch)
    train(TrainConfig(task=task, out=str(tmp_path), epochs=1, hidden_size=4, size=0.1, progress=False))
    assert (tmp_path / "loss.png").exists() and (tmp_path / "predictions.png").exists()
    assert len(seen) == 2
    for xlabel, ylabel in seen:
        assert xlabel and ylabel and "(" in ylabel, (xlabel, ylabel)  # "(unit)" in every y label
