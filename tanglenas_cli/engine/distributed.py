"""Data-parallel search across processes (``accelerate launch`` / ``torchrun``), without DDP wrappers.

Every process holds the whole supernet and draws the same architecture each step (samplers use their
own generator, seeded identically on every rank). After each backward pass the gradients -- of the
weights and of the architecture logits alike -- are averaged across processes, weighted by each
process's share of the global batch, so a step equals the single-process step on the global batch
(up to batch-norm statistics, which stay per process). Parameters that the sampled path did not use
have no gradient on any rank and are left alone, so there is no "unused parameter" problem.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn

from tanglenas_cli.errors import UserError


class Cluster:
    """This process's rank among ``world`` data-parallel processes and the collectives a search needs."""

    def __init__(self, rank: int = 0, world: int = 1) -> None:
        self.rank, self.world = rank, world
        self.local_count = 0  # samples in this process's share of the current batch (set by loss functions)

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and prints."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Whether there is more than one process."""
        return self.world > 1

    def _all_reduce(self, tensor: Tensor) -> Tensor:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def average_gradients(self, grads: Sequence[Tensor]) -> list[Tensor]:
        """Return ``sum_r n_r g_r / sum_r n_r`` for gradients ``grads`` of this process's share."""
        grads = list(grads)
        if not self.active or not grads:
            return grads
        flat = torch.cat([g.reshape(-1).float() for g in grads] + [grads[0].new_ones(1).float()])
        flat.mul_(float(self.local_count))
        self._all_reduce(flat)
        total = flat[-1].clone()
        flat = flat[:-1] / total.clamp_min(1.0)
        out, offset = [], 0
        for grad in grads:
            out.append(flat[offset : offset + grad.numel()].view_as(grad).to(grad.dtype))
            offset += grad.numel()
        return out

    def average_parameter_gradients(self, params: Sequence[nn.Parameter]) -> None:
        """Replace ``.grad`` of every parameter that has one with its cross-process average (in place)."""
        if not self.active:
            return
        with_grad = [p for p in params if p.grad is not None]
        for param, grad in zip(with_grad, self.average_gradients([p.grad for p in with_grad]), strict=True):
            param.grad = grad

    def sum_(self, tensor: Tensor) -> Tensor:
        """Sum ``tensor`` over processes in place (no-op with one process)."""
        return self._all_reduce(tensor) if self.active else tensor

    def average_buffers(self, model: nn.Module) -> None:
        """Average floating-point buffers (batch-norm running statistics) over processes."""
        if not self.active:
            return
        for buffer in model.buffers():
            if buffer.is_floating_point():
                self._all_reduce(buffer.data).div_(self.world)

    def check_identical(self, tensors: Sequence[Tensor], what: str) -> None:
        """Stop the run if ``tensors`` are not bit-identical on every process."""
        if not self.active or not tensors:
            return
        flat = torch.cat([t.detach().reshape(-1).float() for t in tensors])
        gathered = [torch.empty_like(flat) for _ in range(self.world)]
        dist.all_gather(gathered, flat)
        if any(not torch.equal(other, gathered[0]) for other in gathered[1:]):
            raise UserError(f"{what} differ between processes: the data-parallel search is out of sync")

    def broadcast_module(self, model: nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every process."""
        if not self.active:
            return
        for tensor in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(tensor.data, src=0)

    def barrier(self) -> None:
        """Wait for every process."""
        if self.active:
            dist.barrier()
