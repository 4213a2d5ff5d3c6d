"""``chars``: per-step token mapping, the classic hello -> ohlol (RNNCell + Embedding).

The input text is streamed cyclically (``hellohello...``) and at every step the model
maps the current character to the target character at the same position (``ohlol...``).
Both ``l`` s of hello map differently, so the model must remember what came before.
``--text`` trains next-character prediction on any short text instead (the target is
the text rotated by one). Token input (int64 ids), a classifier head over the
vocabulary, cross-entropy loss; the metric is accuracy on a stream of whole cycles
from a zero state. Baseline: always predict the most frequent target character.
"""

from __future__ import annotations

import torch
from torch import nn

from rnnx.errors import ConfigError
from rnnx.training.config import TrainConfig, require
from rnnx.training.tasks.base import Split, Task, TaskData, model_options, stream

SOURCE, TARGET = "hello", "ohlol"  # the tutorial's mapping
MAX_TEXT = 200  # --text: longest text accepted (a short text, memorised as a cycle)
TRAIN_STEPS = 400  # steps of the cyclic training stream
TEST_CYCLES = 20  # whole cycles streamed for the test
VAL_CYCLES = 10  # cycles of the validation stream, which starts mid-cycle (not the test stream)


def pairs(text: str | None) -> tuple[str, str]:
    """(input, target) strings: hello->ohlol, or ``text`` -> ``text`` rotated by one.

    Raises:
        ConfigError: ``text`` shorter than 2 or longer than 200 characters.
    """
    if text is None:
        return SOURCE, TARGET
    if not 2 <= len(text) <= MAX_TEXT:
        raise ConfigError(f"--text: expected 2 to {MAX_TEXT} characters, got {len(text)}")
    return text, text[1:] + text[:1]


def _cycle(ids: torch.Tensor, steps: int) -> torch.Tensor:
    reps = -(-steps // len(ids))
    return ids.repeat(reps)[:steps]


class CharsTask(Task):
    """Token-in, token-out mapping learnt as a stream."""

    name = "chars"
    classification = True
    defaults = {
        "model": "rnn",
        "hidden_size": 16,
        "num_layers": 1,
        "embedding_dim": 8,
        "epochs": 150,
        "lr": 0.02,
        "batch_size": 8,
        "patience": 30,
        "window": 10,
    }

    def prepare(self, cfg: TrainConfig, gen: torch.Generator) -> TaskData:
        src, tgt = pairs(cfg.text)
        vocab = "".join(sorted(set(src + tgt)))
        xi = torch.tensor([vocab.index(c) for c in src])
        yi = torch.tensor([vocab.index(c) for c in tgt])
        n_train = max(4 * len(src), round(TRAIN_STEPS * cfg.size))
        n_test = TEST_CYCLES * len(src)
        train = Split(x=_cycle(xi, n_train)[None], y=_cycle(yi, n_train)[None])  # (1, T)
        test = Split(x=_cycle(xi, n_test)[None], y=_cycle(yi, n_test)[None])
        shift = len(src) // 2 + 1  # validation: its own stream, starting at another phase of the cycle
        n_val = VAL_CYCLES * len(src)
        val = Split(
            x=_cycle(xi.roll(-shift), n_val)[None], y=_cycle(yi.roll(-shift), n_val)[None], warmup=len(src)
        )  # one cycle of context before scoring
        opts = model_options(cfg, vocab_size=len(vocab), embedding_dim=cfg.embedding_dim, output_size=len(vocab))
        info = {
            "vocab": vocab,
            "source": src,
            "target": tgt,
            "input": "token ids (B, T) int64 into vocab",
            "output": "logits over vocab (B, T, V)",
        }
        return TaskData(train=train, val=val, test=test, model=opts, window=require(cfg.window, "window"), info=info)

    def baseline(self, split: Split) -> float:
        """Accuracy of always predicting the most frequent target token."""
        t = split.y[:, split.warmup :].reshape(-1)
        return torch.bincount(t).max().item() / t.numel()

    def plot(self, model: nn.Module, data: TaskData, path: str) -> None:
        from rnnx.training import plots

        vocab = data.info["vocab"]
        n = min(len(data.info["source"]) * 3, 60)
        x, t = data.test.x[0, :n], data.test.y[0, :n]
        pred = stream(model, Split(x=x[None], y=t[None]))[0].argmax(-1)
        fig, ax = plots.new_figure(size=(max(6.0, 0.25 * n), 2.2))
        ax.axis("off")
        for row, (name, ids) in enumerate((("input", x), ("target", t), ("predicted", pred))):
            ax.text(
                0.0,
                0.8 - 0.35 * row,
                f"{name:>10}: " + "".join(vocab[i] for i in ids.tolist()),
                family="monospace",
                fontsize=11,
                transform=ax.transAxes,
                color="black" if row < 2 else ("green" if bool((pred == t).all()) else "red"),
            )
        ax.set_title("chars: streamed predictions (zero initial state)")
        fig.savefig(path, dpi=90)
