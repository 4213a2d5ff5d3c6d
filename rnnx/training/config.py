"""`TrainConfig`: every option of ``rnnx train``, with task defaults filled in later.

Fields left as ``None`` take the task's default (see ``Task.defaults``), so
``TrainConfig(task="sine", out="runs/sine")`` trains the task's recommended model.

Example:
    >>> cfg = TrainConfig(task="sine", out="runs/sine", epochs=3)
    >>> cfg.task, cfg.epochs
    ('sine', 3)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from rnnx.checks import check_int, check_number
from rnnx.errors import ConfigError

DEVICES = ("cpu", "cuda")


@dataclass(kw_only=True)
class TrainConfig:
    """Options of one training run; ``None`` means "the task's default"."""

    out: str  # run directory to write (checkpoint, config.json, metrics.json, plots)
    task: str | None = None  # built-in task: sine | chars | forecast | blobs (or None with csv)
    csv: str | None = None  # path of a CSV file with a header row (the user's own series)
    target: str | None = None  # csv: column to forecast
    features: tuple[str, ...] | None = None  # csv: input columns (None = every numeric column)
    missing: str = "interpolate"  # csv: empty/NA cells: interpolate | ffill | drop | error
    residual: bool | None = None  # series tasks: predict the change from the target's current value
    window: int | None = None  # series tasks: steps per truncated-BPTT window (also the warm-up context)
    horizon: int | None = None  # series tasks: how many future target values each step predicts
    text: str | None = None  # chars: train next-character prediction on this text instead of hello->ohlol
    model: str | None = None  # rnn | lstm | gru | convlstm | seq2seq (None = the task's default model)
    hidden_size: int | None = None  # hidden features (channels for convlstm) per layer
    num_layers: int | None = None  # stacked recurrent layers
    dropout: float | None = None  # dropout between layers (needs num_layers > 1)
    proj_size: int | None = None  # lstm only: projection size of h (0 = none)
    embedding_dim: int | None = None  # chars only: token embedding width
    cell: str | None = None  # seq2seq only: lstm | gru (None = lstm)
    attention: bool = False  # seq2seq only: dot attention of the decoder over the encoder outputs
    epochs: int | None = None  # maximum passes over the training data
    lr: float | None = None  # Adam learning rate
    batch_size: int | None = None  # parallel streams per optimiser step
    patience: int | None = None  # early stopping: epochs without a better validation loss
    seed: int = 0  # seeds data generation, initialisation and batching: same seed -> same metrics
    device: str = "cpu"  # cpu | cuda
    threads: int = 1  # torch CPU threads during training (small models run fastest on 1; 0 = all cores)
    progress: bool = True  # show a tqdm progress bar with the live loss
    plots: bool = True  # write loss.png and predictions.png
    size: float = 1.0  # data-set scale (1.0 = task default; tests use less for speed)

    def validate(self) -> TrainConfig:
        """Check option values that do not depend on the task.

        Returns:
            self, for chaining.

        Raises:
            ConfigError: naming the option, the expected and the received value.
        """
        if (self.task is None) == (self.csv is None):
            raise ConfigError(
                "expected exactly one of --task NAME or --csv FILE, got " + ("both" if self.task else "neither")
            )
        if self.csv is not None and not self.target:
            raise ConfigError("--csv: needs --target COLUMN (the column to forecast)")
        if self.device not in DEVICES:
            raise ConfigError(f"--device: expected one of {', '.join(DEVICES)}, got {self.device!r}")
        for name in (
            "window",
            "horizon",
            "hidden_size",
            "num_layers",
            "epochs",
            "batch_size",
            "patience",
            "embedding_dim",
        ):
            if getattr(self, name) is not None:  # None: the task's default
                setattr(self, name, check_int(_flag(name), getattr(self, name)))
        if self.lr is not None:
            self.lr = check_number("--lr", self.lr, open_minimum=True)
        self.threads = check_int("--threads", self.threads, minimum=0)  # 0: all cores
        self.size = check_number("size", self.size, open_minimum=True)
        return self

    def to_dict(self) -> dict[str, Any]:
        """All fields as JSON-ready values."""
        d = asdict(self)
        if d["features"] is not None:
            d["features"] = list(d["features"])
        return d


T = TypeVar("T")


def require(value: T | None, name: str) -> T:
    """An option the task's defaults fill in (``runner.resolve``), as its non-None value.

    Raises:
        ConfigError: the option is still None (a config that was not resolved).
    """
    if value is None:
        raise ConfigError(f"{_flag(name)}: expected a value (the task's default once resolved), got None")
    return value


def _flag(name: str) -> str:
    """The command-line flag of an option: ``batch_size`` -> ``--batch-size``."""
    return f"--{name.replace('_', '-')}"
