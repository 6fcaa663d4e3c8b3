"""Optimizers torch.optim lacks: RMSpropNesterov, RMSProp with Nesterov momentum.

It is the torch twin of sysdl_kernels.scratch.optim.RMSpropNesterov (same hyperparameters, same
update, op for op), the oracle that numpy version is tested against, and usable on its own:

    opt = RMSpropNesterov(model.parameters(), lr=1e-3, momentum=0.9)
    loss.backward(); opt.step(); opt.zero_grad()
"""

from __future__ import annotations

import torch

from sysdl_kernels.scratch.optim import check_range


class RMSpropNesterov(torch.optim.Optimizer):
    """RMSProp with Nesterov momentum (Goodfellow, Bengio & Courville, Deep Learning, Alg. 8.6).

    Written, like torch.optim.SGD(nesterov=True), so the gradient g is taken at the stored
    parameters, which stand for the look-ahead point theta + momentum * v:

        g = grad + weight_decay * param
        square_avg = alpha * square_avg + (1 - alpha) * g^2
        s = g / (sqrt(square_avg) + eps)
        momentum_buffer = momentum * momentum_buffer + s          (starts at 0)
        param -= lr * (s + momentum * momentum_buffer)

    The change of variables from the book's form is derived in the numpy twin's docstring
    (sysdl_kernels.scratch.optim.RMSpropNesterov). momentum=0 is plain RMSprop. Per-parameter
    state: 'square_avg' and 'momentum_buffer'. Param groups may override any hyperparameter.
    Every hyperparameter, the defaults and each group's, must be finite and >= 0; a 1-element
    tensor is accepted (as torch.optim accepts a Tensor lr) and stored as a Python float.
    """

    HYPERPARAMETERS = ("lr", "alpha", "eps", "weight_decay", "momentum")

    def __init__(self, params, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.9):
        given = {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay, "momentum": momentum}
        defaults = {name: check_range(name, value, 0.0) for name, value in given.items()}
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        """torch's, after checking the group's own hyperparameters (torch.optim calls this for
        every group, the constructor's included)."""
        for name in self.HYPERPARAMETERS:
            if name in param_group:
                param_group[name] = check_range(f"param group {len(self.param_groups)} {name}",
                                                param_group[name], 0.0)
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns closure()'s loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
            weight_decay, momentum = group["weight_decay"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("RMSpropNesterov does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                square_avg, buf = state["square_avg"], state["momentum_buffer"]

                grad = p.grad if weight_decay == 0 else p.grad.add(p, alpha=weight_decay)
                square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
                scaled = grad / square_avg.sqrt().add_(eps)
                buf.mul_(momentum).add_(scaled)
                p.add_(scaled.add(buf, alpha=momentum), alpha=-lr)
        return loss
