"""Shared pieces of the models: normalisation buffers, example inputs, the eval-mode copy."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TypeVar

import torch
from torch import Tensor, nn

from rnnx.errors import ConfigError
from rnnx.models.config import ModelConfig

ArrayLike = Tensor | Sequence[float]
ModuleT = TypeVar("ModuleT", bound=nn.Module)


def eval_copy(model: ModuleT) -> ModuleT:
    """A deep copy of ``model`` in eval mode (the user's model is never mutated)."""
    return copy.deepcopy(model).eval()


class ZooModel(nn.Module):
    """Base of the zoo models: contract attributes, normalisation, example inputs.

    Attributes set here (plain attributes, so ``torch.jit.script`` keeps them):
    ``kind``, ``config``, ``state_names``, ``streamable``.
    """

    # normalisation buffers, registered only with ``normalize=True`` (typed here for mypy;
    # torch.jit.script reads the same annotations)
    in_mean: Tensor
    in_std: Tensor
    out_mean: Tensor
    out_std: Tensor

    def __init__(self, config: ModelConfig, state_names: list[str]) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.kind = config.kind
        self.state_names = list(state_names)
        self.streamable = not config.bidirectional
        if config.normalize:
            self.register_buffer("in_mean", torch.zeros(config.feature_size))
            self.register_buffer("in_std", torch.ones(config.feature_size))
            self.register_buffer("out_mean", torch.zeros(config.out_size))
            self.register_buffer("out_std", torch.ones(config.out_size))

    def set_normalization(self, in_mean: ArrayLike, in_std: ArrayLike, out_mean: ArrayLike, out_std: ArrayLike) -> None:
        """Fill the normalisation buffers (model built with ``normalize=True``).

        The model then computes ``head((x - in_mean) / in_std) * out_std + out_mean``, so
        an exported graph takes and returns raw units.

        Raises:
            ConfigError: the model has no buffers, a shape is wrong or a std is not > 0.
        """
        if not self.config.normalize:
            raise ConfigError(
                "normalize: set_normalization needs a model built with normalize=True, got normalize=False"
            )
        values = {}
        for name, value in (("in_mean", in_mean), ("in_std", in_std), ("out_mean", out_mean), ("out_std", out_std)):
            buf: Tensor = getattr(self, name)
            t = (
                torch.as_tensor(value, dtype=buf.dtype).reshape(-1)
                if not isinstance(value, Tensor)
                else value.detach().to(buf.dtype)
            )
            if tuple(t.shape) != tuple(buf.shape):
                raise ConfigError(f"{name}: expected shape {tuple(buf.shape)}, got {tuple(t.shape)}")
            if name.endswith("std") and not bool((t > 0).all()):
                raise ConfigError(f"{name}: expected every value > 0, got {t.tolist()}")
            values[name] = t
        with torch.no_grad():  # all checked first: a failed call changes nothing
            for name, t in values.items():
                getattr(self, name).copy_(t)

    def example_input(self, batch_size: int = 2, steps: int = 5) -> Tensor:
        """Random input of the right shape and dtype: (B, T, F), (B, T) int64 ids or (B, T, C, H, W)."""
        cfg = self.config
        if cfg.vocab_size is not None:
            return torch.randint(0, cfg.vocab_size, (batch_size, steps), dtype=torch.int64)
        if cfg.kind == "convlstm":
            height, width = cfg.image_size  # type: ignore[misc]
            return torch.randn(batch_size, steps, cfg.input_size, height, width)  # type: ignore[arg-type]
        return torch.randn(batch_size, steps, cfg.input_size)  # type: ignore[arg-type]

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, streamable={self.streamable}"
