"""``rnnx.progress``: a bar on a terminal, plain periodic log lines anywhere else."""

from __future__ import annotations

import io
import logging

from rnnx.progress import Progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_it_logs_plain_lines_without_carriage_returns(caplog) -> None:
    stream = io.StringIO()
    with caplog.at_level(logging.INFO, logger="rnnx"):
        with Progress(3, "train sine", "epoch", stream=stream, interval=0.0) as bar:
            for _ in range(3):
                bar.update(1)
                bar.set_postfix(loss="0.5")
    lines = [r.getMessage() for r in caplog.records if r.name == "rnnx.progress"]
    assert lines[:2] == ["train sine: 1/3 epoch", "train sine: 2/3 epochs loss=0.5"]
    assert lines[-1] == "train sine: 3/3 epochs loss=0.5"
    assert stream.getvalue() == "" and not any("\r" in line for line in lines)


def test_lines_are_rate_limited(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="rnnx"):
        with Progress(1000, "run", "step", stream=io.StringIO(), interval=3600) as bar:
            for _ in range(1000):
                bar.update(1)
    assert [r.getMessage() for r in caplog.records if r.name == "rnnx.progress"] == ["run: 1000/1000 steps"]


def test_on_a_terminal_it_draws_a_bar(caplog) -> None:
    stream = _Tty()
    with caplog.at_level(logging.INFO, logger="rnnx"):
        with Progress(5, "run", "step", stream=stream) as bar:
            bar.update(5)
    assert "\rrun:" in stream.getvalue() and "0/5" in stream.getvalue()  # tqdm (leave=False) drew
    assert not [r for r in caplog.records if r.name == "rnnx.progress"]


def test_disabled_is_silent(caplog) -> None:
    stream = io.StringIO()
    with caplog.at_level(logging.DEBUG, logger="rnnx"):
        with Progress(5, "run", "step", enabled=False, stream=stream, interval=0.0) as bar:
            bar.update(5)
    assert stream.getvalue() == "" and not caplog.records
