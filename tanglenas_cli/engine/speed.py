"""Optional speed-ups of a model: channels-last memory layout and ``torch.compile``.

Both keep the model's parameters and ``state_dict`` keys unchanged, so checkpoints written with and
without them are interchangeable.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tanglenas_cli.errors import UserError


def _to_channels_last(_module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
        return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    return args


def speed_up(model: nn.Module, *, channels_last: bool = False, compile: bool = False) -> nn.Module:
    """Return ``model`` (changed in place) stored channels-last and/or compiled with ``torch.compile``.

    Channels-last converts the weights and every 4-D input; it makes CPU (oneDNN) and tensor-core
    convolutions faster. ``torch.compile`` compiles ``forward`` in place (``nn.Module.compile``).
    """
    if channels_last:
        model.to(memory_format=torch.channels_last)
        model.register_forward_pre_hook(_to_channels_last)
    if compile:
        model.compile()
    return model


def check_compile_supported(optimizer: str) -> None:
    """Refuse ``compile`` with optimizers whose sampled path changes the graph every step."""
    from tanglenas_cli.nas.samplers import sampler_class

    if sampler_class(optimizer).draws_paths:
        raise UserError(
            f"compile=true works with the mixture optimizers and for training; {optimizer} samples a new "
            "path every step, which torch.compile would re-trace each time: drop compile"
        )
