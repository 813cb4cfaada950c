"""Architect: the architecture-logit update of bilevel one-shot search.

First order (DARTS v1, DrNAS, GDAS): the gradient of the arch-split loss at the current weights.
Second order (DARTS v2): the gradient of ``L_val(w', alpha)`` with the virtual weight step
``w' = w - xi * (momentum * buffer + grad_w L_train(w, alpha) + wd * w)``, i.e.
``grad_alpha L_val(w') - xi * H v`` where the Hessian-vector product
``H v = (grad_alpha L_train(w + R v) - grad_alpha L_train(w - R v)) / 2R``, ``v = grad_w' L_val(w')``
and ``R = 0.01 / ||v||`` (finite differences, as in the DARTS paper).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from tanglenas_cli.nas.choices import arch_parameters, find_choices, weight_parameters
from tanglenas_cli.nas.samplers import Sampler

LossFn = Callable[[nn.Module, Any], Tensor]
"""``loss_fn(model, batch)`` returns the scalar loss of ``model`` on ``batch``."""


class MicroBatches(list):
    """Batches whose gradients are accumulated into one step (gradient accumulation).

    The step's loss is the mean of the micro-batch losses; each micro-batch is back-propagated on its
    own, so memory stays that of one micro-batch.
    """

    def joined(self) -> Any:
        """Return the micro-batches concatenated into one batch (field by field)."""
        if len(self) == 1:
            return self[0]
        return [torch.cat(list(parts)) for parts in zip(*self, strict=True)]


def _gradients(loss: Tensor, params: Sequence[Tensor]) -> list[Tensor]:
    grads = torch.autograd.grad(loss, list(params), allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]


class Architect:
    """Owns the architecture optimizer (Adam) and performs one arch step per call of :meth:`step`."""

    def __init__(
        self,
        model: nn.Module,
        sampler: Sampler,
        loss_fn: LossFn,
        *,
        lr: float = 3e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        weight_decay: float = 1e-3,
        second_order: bool = False,
        weight_optimizer: torch.optim.Optimizer | None = None,
        hvp_epsilon: float = 0.01,
        reduce_gradients: Callable[[list[Tensor]], list[Tensor]] | None = None,
        grad_clip: float | None = None,
        loss_transform: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.model = model
        self.sampler = sampler
        self.loss_fn = loss_fn
        self.choices = find_choices(model)
        self.arch_params = arch_parameters(model)
        self.weight_params = weight_parameters(model, exclude=self.arch_params)
        self.second_order = second_order
        self.weight_optimizer = weight_optimizer
        self.hvp_epsilon = hvp_epsilon
        # e.g. averaging across data-parallel processes; applied to every gradient the architect takes
        self.reduce_gradients = reduce_gradients
        self.grad_clip = grad_clip  # max norm of the logits' gradient (None: unclipped)
        # e.g. a cost budget's penalty: applied to the arch-split loss of every arch step
        self.loss_transform = loss_transform
        self.optimizer = torch.optim.Adam(self.arch_params, lr=lr, betas=betas, weight_decay=weight_decay)

    def _gradients(self, loss: Tensor, params: Sequence[Tensor]) -> list[Tensor]:
        grads = _gradients(loss, params)
        return grads if self.reduce_gradients is None else self.reduce_gradients(grads)

    def _loss(self, batch: Any) -> Tensor:
        self.sampler.sample(self.choices)
        return self.loss_fn(self.model, batch)

    def arch_loss(self, batch: Any) -> Tensor:
        """Return the architecture loss on ``batch`` (fresh sample, ``loss_transform``, plus the sampler's
        regulariser)."""
        loss = self._loss(batch)
        if self.loss_transform is not None:
            loss = self.loss_transform(loss)
        regularization = self.sampler.regularization(self.choices)
        return loss if regularization is None else loss + regularization

    def _accumulated_gradients(self, batches: MicroBatches) -> tuple[Tensor, list[Tensor]]:
        """Return (mean loss, gradient of the mean loss) over micro-batches, one backward each."""
        total: list[Tensor] | None = None
        loss_sum: Tensor | None = None
        for batch in batches:
            loss = self.arch_loss(batch) / len(batches)
            grads = _gradients(loss, self.arch_params)
            total = grads if total is None else [a + b for a, b in zip(total, grads, strict=True)]
            loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
        assert loss_sum is not None
        assert total is not None
        return loss_sum, total if self.reduce_gradients is None else self.reduce_gradients(total)

    def step(self, arch_batch: Any, train_batch: Any = None, weight_lr: float | None = None) -> Tensor | None:
        """Update the logits on ``arch_batch``; second order also needs ``train_batch`` and ``weight_lr``.

        Either batch may be :class:`MicroBatches` (gradient accumulation; the second-order step joins
        them into one batch). Returns the architecture loss (detached), or None when the sampler does
        not train logits.
        """
        if not self.sampler.trains_logits or not self.arch_params:
            return None
        if self.second_order:
            if train_batch is None or weight_lr is None:
                raise ValueError("the second-order architect needs train_batch and weight_lr")
            if isinstance(arch_batch, MicroBatches):
                arch_batch = arch_batch.joined()
            if isinstance(train_batch, MicroBatches):
                train_batch = train_batch.joined()
            loss, grads = self.unrolled_gradients(arch_batch, train_batch, weight_lr)
        elif isinstance(arch_batch, MicroBatches):
            loss, grads = self._accumulated_gradients(arch_batch)
        else:
            loss = self.arch_loss(arch_batch)
            grads = self._gradients(loss, self.arch_params)
        if not bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):  # one wait per step
            return loss.detach()  # a NaN/inf gradient never reaches the logits (nor Adam's moments)
        for param, grad in zip(self.arch_params, grads, strict=True):
            param.grad = grad.detach()
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.arch_params, self.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def _virtual_step(self, train_batch: Any, lr: float) -> None:
        """Move the weights in place to ``w' = w - lr * (momentum * buffer + grad + wd * w)``."""
        grads = self._gradients(self._loss(train_batch), self.weight_params)
        momentum, decay_of, buffers = 0.0, {}, {}
        if self.weight_optimizer is not None:
            momentum = float(self.weight_optimizer.param_groups[0].get("momentum", 0.0) or 0.0)
            decay_of = {  # each parameter's own group: exempt parameters get no decay here either
                id(p): float(group.get("weight_decay", 0.0) or 0.0)
                for group in self.weight_optimizer.param_groups
                for p in group["params"]
            }
            buffers = {
                id(p): s["momentum_buffer"]
                for p, s in self.weight_optimizer.state.items()
                if "momentum_buffer" in s
            }
        with torch.no_grad():
            for param, grad in zip(self.weight_params, grads, strict=True):
                direction = grad + decay_of.get(id(param), 0.0) * param
                buffer = buffers.get(id(param))
                if momentum and buffer is not None:
                    direction = direction + momentum * buffer
                param.sub_(lr * direction)

    def _shift_weights(self, direction: Sequence[Tensor], scale: Tensor) -> None:
        with torch.no_grad():
            for param, step in zip(self.weight_params, direction, strict=True):
                param.add_(step * scale.to(param.dtype))

    def unrolled_gradients(self, arch_batch: Any, train_batch: Any, lr: float) -> tuple[Tensor, list[Tensor]]:
        """Return (arch loss at w', second-order gradient of the logits); leaves the weights unchanged."""
        original = [p.detach().clone() for p in self.weight_params]
        try:
            self._virtual_step(train_batch, lr)
            loss = self.arch_loss(arch_batch)
            grads = self._gradients(loss, self.arch_params + self.weight_params)
            arch_grads, v = grads[: len(self.arch_params)], grads[len(self.arch_params) :]
        finally:
            with torch.no_grad():
                for param, saved in zip(self.weight_params, original, strict=True):
                    param.copy_(saved)
        norm = torch.sqrt(sum((g.double() ** 2).sum() for g in v))
        radius = self.hvp_epsilon / norm.clamp_min(1e-12)  # a tensor: no wait for the device here
        self._shift_weights(v, radius)
        grads_plus = self._gradients(self._loss(train_batch), self.arch_params)
        self._shift_weights(v, -2 * radius)
        grads_minus = self._gradients(self._loss(train_batch), self.arch_params)
        with torch.no_grad():
            for param, saved in zip(self.weight_params, original, strict=True):
                param.copy_(saved)
        pairs = zip(grads_plus, grads_minus, strict=True)
        hessian_vector = [(gp - gm) / (2 * radius).to(gp.dtype) for gp, gm in pairs]
        return loss, [g - lr * h for g, h in zip(arch_grads, hessian_vector, strict=True)]

    def state_dict(self) -> dict[str, Any]:
        """Return the architecture optimizer's state."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the architecture optimizer's state."""
        self.optimizer.load_state_dict(state)
