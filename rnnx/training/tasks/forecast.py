"""``forecast``: 7 daily weather-like variables -> the next 3 days of one (``temp``).

The tutorial's multivariate problem (10 days of 7 variables to the next 3 days of
one) as a stream: the model reads one day's 7 values at a time and at every step
outputs the 3-value forecast ``[temp(t+1), temp(t+2), temp(t+3)]`` (see
:mod:`rnnx.training.tasks.series` for the streaming semantics). Truncated BPTT uses
10-day windows. The generator mixes a yearly and a weekly season, AR(1) weather noise
and a pressure reading that hints at tomorrow's noise. Baseline: persistence.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from rnnx.training.config import TrainConfig
from rnnx.training.tasks.series import SeriesSpec, SeriesTask

FEATURES = ["temp", "humidity", "pressure", "wind", "rain", "year_phase", "week_phase"]
DAYS = 2400  # rows of the generated series (scaled by TrainConfig.size)


def weather(days: int, gen: torch.Generator) -> np.ndarray:
    """A seasonal 7-variable series with noise: (days, 7), columns as ``FEATURES``."""
    t = torch.arange(days, dtype=torch.float64)
    z = torch.randn(days + 1, 5, generator=gen, dtype=torch.float64)
    ar = torch.zeros(days + 1, dtype=torch.float64)
    for i in range(1, days + 1):
        ar[i] = 0.6 * ar[i - 1] + z[i, 0]
    year, week = 2 * math.pi * t / 365.25, 2 * math.pi * t / 7
    temp = 12 + 9 * torch.sin(year) + 2.5 * torch.sin(week) + 1.2 * ar[:days]
    humidity = 70 - 1.5 * (temp - 12) + 4 * z[:days, 1]
    pressure = 1013 + 3 * z[1:, 0] + 1.0 * z[:days, 2]  # hints at tomorrow's innovation
    wind = 4 + 2 * torch.cos(year) + z[:days, 3].abs() * 2
    rain = torch.relu(z[:days, 4] - 0.5) * 3
    cols = [temp, humidity, pressure, wind, rain, torch.sin(year), torch.sin(week)]
    return torch.stack(cols, dim=1).numpy()


class ForecastTask(SeriesTask):
    """Next 3 days of temperature from 7 daily variables."""

    name = "forecast"
    defaults = {
        "model": "lstm",
        "hidden_size": 32,
        "num_layers": 1,
        "epochs": 60,
        "lr": 0.01,
        "batch_size": 16,
        "patience": 15,
        "window": 10,
        "horizon": 3,
    }

    def series(self, cfg: TrainConfig, gen: torch.Generator) -> SeriesSpec:
        values = weather(max(200, round(DAYS * cfg.size)), gen)
        return SeriesSpec(values=values, features=list(FEATURES), target="temp", target_values=values[:, 0])
