"""Forward FLOPs of a discrete network on one input of its space's data shape.

Counted with ``torch.utils.flop_counter.FlopCounterMode``: 2 FLOPs per multiply-add, as PyTorch counts
them (matrix products and convolutions; element-wise operations are not counted).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tanglenas_cli.spaces.base import SearchSpace


def example_input(space: SearchSpace) -> Tensor:
    """Return one input of the space's data shape: a (1, C, H, W) image, or (1, T) token ids."""
    shape = tuple(int(v) for v in space.data.input_shape)
    if space.task == "language_model":
        return torch.zeros((1, *shape), dtype=torch.long)
    return torch.zeros((1, *shape))


def count_flops(space: SearchSpace, network: nn.Module) -> int:
    """Return the forward FLOPs of ``network`` (eval mode, no gradients) on one input of ``space``."""
    from torch.utils.flop_counter import FlopCounterMode

    parameter = next(network.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    inputs = example_input(space).to(device)
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            network(inputs)
    finally:
        network.train(was_training)
    return int(counter.get_total_flops())
