"""Optimizers for the from-scratch numpy CNN, each the numpy twin of a torch.optim class.

SGD (plain, momentum, Nesterov), Adagrad, RMSprop, Adadelta and Adam take the hyperparameters of
their torch.optim namesakes, with the same names and defaults, and follow torch's for-loop
(foreach=False) update op by op. In float64 they agree with it to a few ulps of the parameters'
scale, not to the bit: torch's CPU add(alpha=), addcmul and lerp fuse a multiply and an add into
one rounding, numpy rounds twice (tests/kernels/test_scratch_optim.py). RMSpropNesterov has no
torch.optim counterpart; its torch twin is sysdl_kernels.torch_optim.RMSpropNesterov.

    params = [w1, b1, w2, b2]                  # numpy float arrays, updated in place
    opt = Adam(params, lr=1e-3, weight_decay=1e-4)
    for batch in batches:
        grads = net.backward(...)              # same order and shapes as params
        opt.step(grads)

Weight decay is the L2 kind torch uses (g += weight_decay * param before the update), not
AdamW's decoupled decay. The learning rate can be changed between steps through ``opt.lr``.

Hyperparameters are real numbers; like torch.optim, a 1-element tensor (torch or numpy) is
accepted too, and read once, as a Python float. Every one is checked when it is set: a value
that is not finite, out of range, or not a number is refused with an error naming it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np


def as_number(name: str, value) -> float:
    """``value`` as a Python int or float: numbers pass, a 1-element torch tensor or numpy array
    becomes its float; anything else is a TypeError, a bigger tensor a ValueError, naming it."""
    if isinstance(value, numbers.Real):
        return value.item() if isinstance(value, np.generic) else value
    if hasattr(value, "shape") and hasattr(value, "item"):         # torch tensor or numpy array
        if math.prod(value.shape) != 1:
            raise ValueError(f"{name} must be a number or a 1-element tensor, got a tensor of shape "
                             f"{tuple(value.shape)}")
        item = value.item()
        if not isinstance(item, numbers.Real):
            raise TypeError(f"{name} must be a real number, got a {getattr(value, 'dtype', '')} tensor")
        return float(item)
    raise TypeError(f"{name} must be a real number (or a 1-element tensor), got {type(value).__name__}")


def check_finite(name: str, value) -> float:
    """``as_number(value)`` if it is finite; else a ValueError naming it."""
    value = as_number(name, value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def check_range(name: str, value, low: float, high: float | None = None,
                high_open: bool = False) -> float:
    """``as_number(value)`` if it is finite and lies in [low, high] ([low, high) when high_open);
    else a ValueError naming it. NaN fails every comparison, so the range check refuses it."""
    value = as_number(name, value)
    ok = value >= low and (high is None or (value < high if high_open else value <= high))
    if not ok:
        allowed = f">= {low}" if high is None else f"in [{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return check_finite(name, value)


class Optimizer:
    """What every optimizer here shares: checks params and grads, L2 weight decay, the loop.

    A subclass sets and checks its own hyperparameters, then calls ``super().__init__``, and
    implements ``_init_state(param) -> dict`` (its per-parameter arrays) and
    ``_update(param, grad, state)`` (one parameter's update, in place). ``self.steps`` counts the
    calls to ``step``, so it is 1 during the first update, like torch's state["step"].
    """

    def __init__(self, params: Sequence[np.ndarray], lr: float, weight_decay: float):
        self.params = _check_params(params)
        self.lr = lr
        self.weight_decay = check_range("weight_decay", weight_decay, 0.0)
        self.steps = 0
        self.state = [self._init_state(p) for p in self.params]

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value) -> None:
        self._lr = check_range("lr", value, 0.0)

    def _init_state(self, param: np.ndarray) -> dict[str, np.ndarray]:
        return {}

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict) -> None:
        raise NotImplementedError

    def step(self, grads: Sequence[np.ndarray]) -> None:
        """Update every parameter in place from its gradient; the grads themselves are not changed."""
        grads = self._check_grads(grads)
        self.steps += 1
        for param, grad, state in zip(self.params, grads, self.state):
            if self.weight_decay != 0:
                grad = grad + self.weight_decay * param   # a new array: the caller's grad stays
            self._update(param, grad, state)

    def _check_grads(self, grads: Sequence[np.ndarray]) -> list[np.ndarray]:
        grads = [np.asarray(g) for g in grads]
        if len(grads) != len(self.params):
            raise ValueError(f"{type(self).__name__}.step got {len(grads)} gradients for "
                             f"{len(self.params)} parameters; pass one gradient per parameter, "
                             f"in the order the parameters were given")
        for i, (param, grad) in enumerate(zip(self.params, grads)):
            if grad.shape != param.shape:
                raise ValueError(f"gradient {i} has shape {grad.shape} but parameter {i} has shape "
                                 f"{param.shape}; grads must be in the same order as params")
        return grads

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k.lstrip('_')}={v!r}" for k, v in vars(self).items()
                          if k not in ("params", "state", "steps"))
        return f"{type(self).__name__}({len(self.params)} params, {hyper})"


def _check_params(params: Sequence[np.ndarray]) -> list[np.ndarray]:
    params = list(params)
    if not params:
        raise ValueError("params is empty; pass the list of parameter arrays to optimize")
    for i, p in enumerate(params):
        if not isinstance(p, np.ndarray) or not np.issubdtype(p.dtype, np.floating):
            what = p.dtype if isinstance(p, np.ndarray) else type(p).__name__
            raise ValueError(f"parameter {i} is {what}; params must be floating-point numpy arrays "
                             f"(they are updated in place)")
        if not p.flags.writeable:
            raise ValueError(f"parameter {i} is read-only; params are updated in place")
    return params


class SGD(Optimizer):
    """torch.optim.SGD: plain, with momentum (``momentum > 0``) and Nesterov (``nesterov=True``).

        buf = g                                   on the first step (torch: no dampening then)
        buf = momentum * buf + (1 - dampening) * g  afterwards
        g   = g + momentum * buf  if nesterov  else  buf
        param -= lr * g
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        self.momentum = check_range("momentum", momentum, 0.0)
        self.dampening = check_finite("dampening", dampening)    # torch puts no range on it
        self.nesterov = nesterov
        if nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(f"nesterov=True needs momentum > 0 and dampening == 0, got "
                             f"momentum={momentum!r}, dampening={dampening!r}")
        super().__init__(params, lr, weight_decay)

    def _update(self, param, grad, state):
        if self.momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.astype(param.dtype, copy=True)
            else:
                buf *= self.momentum
                buf += (1 - self.dampening) * grad
            grad = grad + self.momentum * buf if self.nesterov else buf
        param -= self.lr * grad


class Adagrad(Optimizer):
    """torch.optim.Adagrad: per-element step lr / sqrt(sum of squared gradients).

        clr = lr / (1 + (t - 1) * lr_decay)       t = 1, 2, ... counts the steps
        sum += g^2                                  sum starts at initial_accumulator_value
        param -= clr * g / (sqrt(sum) + eps)
    """

    def __init__(self, params, lr: float = 0.01, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10):
        self.lr_decay = check_range("lr_decay", lr_decay, 0.0)
        self.initial_accumulator_value = check_range(
            "initial_accumulator_value", initial_accumulator_value, 0.0)
        self.eps = check_range("eps", eps, 0.0)
        super().__init__(params, lr, weight_decay)

    def _init_state(self, param):
        return {"sum": np.full_like(param, self.initial_accumulator_value)}

    def _update(self, param, grad, state):
        clr = self.lr / (1 + (self.steps - 1) * self.lr_decay)
        state["sum"] += grad * grad
        std = np.sqrt(state["sum"]) + self.eps
        param -= clr * grad / std


class RMSprop(Optimizer):
    """torch.optim.RMSprop: divide by a running RMS of the gradient (Hinton's lecture 6e).

        sq = alpha * sq + (1 - alpha) * g^2
        avg = sqrt(sq - ga^2) + eps,  ga = alpha * ga + (1 - alpha) * g   if centered
        avg = sqrt(sq) + eps                                               otherwise
        buf = momentum * buf + g / avg;  param -= lr * buf                  if momentum > 0
        param -= lr * g / avg                                               otherwise
    """

    def __init__(self, params, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False):
        self.alpha = check_range("alpha", alpha, 0.0)   # torch's check: it accepts alpha > 1
        self.eps = check_range("eps", eps, 0.0)
        self.momentum = check_range("momentum", momentum, 0.0)
        self.centered = centered
        super().__init__(params, lr, weight_decay)

    def _init_state(self, param):
        state = {"square_avg": np.zeros_like(param)}
        if self.momentum > 0:
            state["momentum_buffer"] = np.zeros_like(param)
        if self.centered:
            state["grad_avg"] = np.zeros_like(param)
        return state

    def _update(self, param, grad, state):
        square_avg = state["square_avg"]
        square_avg *= self.alpha
        square_avg += (1 - self.alpha) * grad * grad
        if self.centered:
            grad_avg = state["grad_avg"]
            grad_avg += (1 - self.alpha) * (grad - grad_avg)    # torch's lerp_
            avg = np.sqrt(square_avg - grad_avg * grad_avg) + self.eps
        else:
            avg = np.sqrt(square_avg) + self.eps
        if self.momentum > 0:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += grad / avg
            param -= self.lr * buf
        else:
            param -= self.lr * grad / avg


class RMSpropNesterov(Optimizer):
    """RMSProp with Nesterov momentum (Goodfellow, Bengio & Courville, Deep Learning, Alg. 8.6).

    The book's version evaluates the gradient at a look-ahead point, with v the velocity:

        g = grad L(theta + momentum * v)
        sq = alpha * sq + (1 - alpha) * g^2
        v = momentum * v - lr * g / (sqrt(sq) + eps)      (the book has no eps; torch's RMSprop's)
        theta = theta + v

    Storing the look-ahead point phi = theta + momentum * v instead of theta (as torch's Nesterov
    SGD does, after Sutskever et al. 2013) puts the gradient at the stored parameters. With
    s = g / (sqrt(sq) + eps) and buf = -v / lr:

        phi_t = theta_t + momentum * v_t = phi_{t-1} - momentum * v_{t-1} + (1 + momentum) * v_t
              = phi_{t-1} + (v_t - momentum * v_{t-1}) + momentum * v_t
              = phi_{t-1} - lr * s - lr * momentum * buf_t

    which is the update done here, g taken at the stored param:

        sq = alpha * sq + (1 - alpha) * g^2
        s = g / (sqrt(sq) + eps)
        buf = momentum * buf + s                  buf starts at 0 (v = 0, so phi_0 = theta_0)
        param -= lr * (s + momentum * buf)

    The stored param is the look-ahead point; theta itself is param + lr * momentum * buf.
    buf = -v / lr assumes a constant lr; when lr changes, buf keeps its meaning and the step
    scales with the new lr, as in torch's Nesterov SGD. momentum=0 is plain RMSprop. Twin: sysdl_kernels.torch_optim.RMSpropNesterov.
    """

    def __init__(self, params, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.9):
        self.alpha = check_range("alpha", alpha, 0.0)   # RMSprop's range, as torch checks it
        self.eps = check_range("eps", eps, 0.0)
        self.momentum = check_range("momentum", momentum, 0.0)
        super().__init__(params, lr, weight_decay)

    def _init_state(self, param):
        return {"square_avg": np.zeros_like(param), "momentum_buffer": np.zeros_like(param)}

    def _update(self, param, grad, state):
        square_avg, buf = state["square_avg"], state["momentum_buffer"]
        square_avg *= self.alpha
        square_avg += (1 - self.alpha) * grad * grad
        scaled = grad / (np.sqrt(square_avg) + self.eps)
        buf *= self.momentum
        buf += scaled
        param -= self.lr * (scaled + self.momentum * buf)


class Adadelta(Optimizer):
    """torch.optim.Adadelta (Zeiler 2012), with torch's extra lr factor (default 1.0).

        sq = rho * sq + (1 - rho) * g^2
        delta = sqrt(acc + eps) / sqrt(sq + eps) * g      eps inside both roots
        acc = rho * acc + (1 - rho) * delta^2
        param -= lr * delta
    """

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0):
        self.rho = check_range("rho", rho, 0.0, 1.0)
        self.eps = check_range("eps", eps, 0.0)
        super().__init__(params, lr, weight_decay)

    def _init_state(self, param):
        return {"square_avg": np.zeros_like(param), "acc_delta": np.zeros_like(param)}

    def _update(self, param, grad, state):
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        square_avg *= self.rho
        square_avg += (1 - self.rho) * grad * grad
        std = np.sqrt(square_avg + self.eps)
        delta = np.sqrt(acc_delta + self.eps) / std * grad
        acc_delta *= self.rho
        acc_delta += (1 - self.rho) * delta * delta
        param -= self.lr * delta


class Adam(Optimizer):
    """torch.optim.Adam (Kingma & Ba 2014), optionally AMSGrad, L2 (not decoupled) weight decay.

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        vmax = max(vmax, v); v' = vmax if amsgrad else v    (vmax is not bias-corrected)
        param -= lr / (1 - beta1^t) * m / (sqrt(v') / sqrt(1 - beta2^t) + eps)

    eps is added to the bias-corrected RMS sqrt(v') / sqrt(1 - beta2^t), as in the paper's
    Algorithm 1, not to the raw sqrt(v') as in its "more efficient" reordering.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False):
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}") from None
        self.betas = (check_range("betas[0]", beta1, 0.0, 1.0, high_open=True),
                      check_range("betas[1]", beta2, 0.0, 1.0, high_open=True))
        self.eps = check_range("eps", eps, 0.0)
        self.amsgrad = amsgrad
        super().__init__(params, lr, weight_decay)

    def _init_state(self, param):
        state = {"exp_avg": np.zeros_like(param), "exp_avg_sq": np.zeros_like(param)}
        if self.amsgrad:
            state["max_exp_avg_sq"] = np.zeros_like(param)
        return state

    def _update(self, param, grad, state):
        beta1, beta2 = self.betas
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg += (1 - beta1) * (grad - exp_avg)    # torch's lerp_
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad
        # Scalars as torch computes them: Python floats, the square root as ** 0.5.
        step_size = self.lr / (1 - beta1 ** self.steps)
        bias_correction2_sqrt = (1 - beta2 ** self.steps) ** 0.5
        if self.amsgrad:
            np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            exp_avg_sq = state["max_exp_avg_sq"]
        denom = np.sqrt(exp_avg_sq) / bias_correction2_sqrt + self.eps
        param -= step_size * exp_avg / denom
