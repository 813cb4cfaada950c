"""A ReLU computed once per input tensor, however many ops start with it.

Cell ops start with a ReLU of their input (DARTS' sep and dil convs, NB201's ReLU-conv-BN), and
several ops read the same input: every candidate group of a supernet edge, every edge leaving a cell
state. Each ``nn.ReLU`` would write (and keep for the backward pass) its own copy of the same tensor.
:class:`SharedReLU` keeps its output on the input tensor, and every later SharedReLU of that input,
in the same grad mode and before any in-place change of either, returns that output: the same numbers, one
tensor, one backward. A DARTS WE edge otherwise holds two of them (its sep and dil groups), a DARTS
cell state up to eight.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

_MEMO = "_tanglenas_relu"


def shared_relu(x: Tensor) -> Tensor:
    """Return ``x.relu()``, the same tensor for every call on ``x`` (see the module docstring)."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting():
        return x.relu()
    if x.is_leaf and x.requires_grad:  # the memo would close a reference cycle through x's grad node
        return x.relu()
    if x.is_inference():  # no version counter to check (and no backward to keep a copy for)
        return x.relu()
    grad_mode = torch.is_grad_enabled()
    memo = x.__dict__.get(_MEMO)
    if memo is not None and memo[:2] == (x._version, grad_mode) and memo[2]._version == memo[3]:
        return memo[2]
    output = x.relu()
    setattr(x, _MEMO, (x._version, grad_mode, output, output._version))
    return output


class SharedReLU(nn.ReLU):
    """``nn.ReLU()`` (not in place) that shares its output among all ReLUs of one input tensor."""

    def __init__(self) -> None:
        super().__init__(inplace=False)

    def forward(self, x: Tensor) -> Tensor:
        return shared_relu(x)
