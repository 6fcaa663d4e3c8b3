"""ReLU, the dense (linear) layer and softmax cross-entropy, forward and backward, on numpy
arrays or torch tensors (the same code for both).

    relu:    y = max(x, 0)                 dx = dy where x > 0, else 0
    linear:  y = x @ W.T + b  (N, out)     dx = dy @ W,  dW = dy.T @ x,  db = dy.sum(0)
    softmax cross-entropy, mean over the batch:
             loss = mean(logsumexp(z) - z[label])     dz = (softmax(z) - onehot(label)) / N

IEEE specials follow torch: relu(-inf) = 0, relu(NaN) = NaN, and relu's backward passes the
upstream gradient where x > 0 or x is NaN and gives exactly 0 elsewhere, even for an infinite
upstream gradient (torch's threshold_backward); an +inf logit makes its row's log-softmax NaN, a
-inf logit has log-probability -inf. Any layout is accepted; relu takes any shape, 0-d included.
On torch tensors every function here is differentiable by autograd.
"""

from __future__ import annotations

from sysdl_kernels._array import check_array, check_shape, keep_where, ops


def relu(x):
    check_array(x, "x")
    return ops(x).relu(x)               # not x * (x > 0): -inf * 0 is NaN


def relu_backward(grad_out, x):
    check_array(x, "x")
    check_array(grad_out, "grad_out", like=x)
    check_shape(grad_out, "grad_out", x.shape)
    # torch's threshold_backward: 0 where x <= 0, the gradient elsewhere (where x is NaN too)
    return keep_where(ops(x).xp.logical_not(x <= 0), grad_out)


def _check_linear(x, weight, bias=None):
    check_array(x, "x", ndim=2)
    check_array(weight, "weight", ndim=2, like=x)
    if weight.shape[1] != x.shape[1]:
        raise ValueError(f"weight expects {weight.shape[1]} input features (shape {tuple(weight.shape)}) "
                         f"but x has {x.shape[1]} (shape {tuple(x.shape)})")
    if bias is not None:
        check_array(bias, "bias", ndim=1, like=x)
        check_shape(bias, "bias", (weight.shape[0],))


def linear(x, weight, bias=None):
    """(N, in) @ (out, in).T + (out,) -> (N, out)."""
    _check_linear(x, weight, bias)
    out = x @ weight.T
    return out + bias if bias is not None else out


def linear_backward(grad_out, x, weight):
    """(grad_x, grad_weight, grad_bias) of ``linear``."""
    _check_linear(x, weight)
    check_array(grad_out, "grad_out", ndim=2, like=x)
    check_shape(grad_out, "grad_out", (x.shape[0], weight.shape[0]))
    return grad_out @ weight, grad_out.T @ x, grad_out.sum(0)


def log_softmax(logits):
    check_array(logits, "logits", ndim=2)
    if logits.shape[1] == 0:
        raise ValueError(f"logits must have at least one class (column), got shape {tuple(logits.shape)}")
    lib = ops(logits)
    shifted = logits - lib.amax(logits, 1)                     # stable: the largest becomes 0
    return shifted - lib.xp.log(lib.sum_keep(lib.xp.exp(shifted), 1))


def softmax(logits):
    return ops(logits).xp.exp(log_softmax(logits))


def softmax_cross_entropy(logits, labels):
    """(mean loss, grad of the mean loss with respect to logits) for integer class labels."""
    log_probs = log_softmax(logits)
    n, classes = logits.shape
    if not isinstance(labels, type(logits)):
        raise TypeError(f"labels must be a {type(logits).__name__} like logits, got {type(labels).__name__}")
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
    if "int" not in str(labels.dtype):
        raise TypeError(f"labels must be integers, got {labels.dtype}")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise ValueError(f"labels must lie in [0, {classes - 1}], got [{int(labels.min())}, {int(labels.max())}]")
    lib = ops(logits)
    if n == 0:                                                  # torch's mean over no rows: NaN
        return lib.xp.full((), float("nan"), dtype=logits.dtype)[()], lib.xp.exp(log_probs)
    picked = lib.take_last(log_probs, labels)                   # log p(label) per row
    grad = lib.xp.exp(log_probs)
    grad[lib.arange(n, logits), labels] -= 1
    return -picked.mean(), grad / n
