"""Forward FLOPs of a discrete network on one input of its space's data shape.

Counted with ``torch.utils.flop_counter.FlopCounterMode``: 2 FLOPs per multiply-add, as PyTorch counts
them (matrix products and convolutions; element-wise operations are not counted). Attention is counted
through PyTorch's plain ("math") kernel, whose matrix products the counter sees on every device (its fused
CPU kernel has no FLOP formula, so a count would otherwise depend on where it ran). Pooling counts nothing,
as in NAS-Bench-201, NATS-Bench and PyTorch's own count of ``nn.AvgPool2d``: the box convolution that
runs an average pool here (:class:`~tanglenas_cli.layers.pooling.BoxAvgPool2d`) is left out.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tanglenas_cli.engine.task import task_of
from tanglenas_cli.layers.pooling import BoxAvgPool2d
from tanglenas_cli.spaces.base import SearchSpace


def count_flops(space: SearchSpace, network: nn.Module) -> int:
    """Return the forward FLOPs of ``network`` (eval mode, no gradients) on one input of ``space``."""
    parameter = next(network.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    inputs, _ = task_of(space).example_batch(space.data, 1, device)
    return count_module_flops(network, inputs)


def count_module_flops(module: nn.Module, inputs: Tensor) -> int:
    """Return the forward FLOPs of ``module`` on ``inputs`` (eval mode, no gradients, pools left out)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    was_training = module.training
    counter = FlopCounterMode(display=False)
    pooling = [0]  # FLOPs the counter saw inside average pools
    started: list[int] = []

    def enter_pool(pool: nn.Module, args: tuple) -> None:
        started.append(counter.get_total_flops())

    def leave_pool(pool: nn.Module, args: tuple, output: Tensor) -> None:
        pooling[0] += counter.get_total_flops() - started.pop()

    hooks = []
    for child in module.modules():
        if isinstance(child, BoxAvgPool2d):
            hooks += [child.register_forward_pre_hook(enter_pool), child.register_forward_hook(leave_pool)]
    module.eval()
    try:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
            module(inputs)
    finally:
        module.train(was_training)
        for hook in hooks:
            hook.remove()
    return int(counter.get_total_flops() - pooling[0])
