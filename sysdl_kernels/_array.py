"""What the numpy and torch kernels share: argument checks and the few array operations whose
spelling differs between the two libraries.

The kernels in conv.py, pool.py and dense.py are written once against ``ops(x)``, which
returns the numpy or the torch flavour of these operations, so the same algorithm runs on
numpy arrays and on torch tensors (CPU or CUDA) without a copied variant.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

FLOAT_DTYPES = ("float32", "float64")


def dtype_name(x) -> str:
    return str(x.dtype).removeprefix("torch.")


def check_array(x, name: str, ndim: int | None = None, like=None) -> None:
    """Raise TypeError/ValueError unless ``x`` is a float32/float64 array of ``ndim`` dims,
    of the same library and dtype as ``like``."""
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")
    if dtype_name(x) not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {dtype_name(x)}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got {x.ndim} (shape {tuple(x.shape)})")
    if like is not None:
        if isinstance(x, np.ndarray) != isinstance(like, np.ndarray):
            raise TypeError(f"{name} is a {type(x).__name__} but the input is a {type(like).__name__}; "
                            f"pass both as numpy arrays or both as torch tensors")
        if dtype_name(x) != dtype_name(like):
            raise TypeError(f"{name} is {dtype_name(x)} but the input is {dtype_name(like)}; "
                            f"mixed dtypes are not supported")
        if isinstance(x, torch.Tensor) and x.device != like.device:
            raise ValueError(f"{name} is on {x.device} but the input is on {like.device}; "
                             f"move both to one device")


def requires_grad(*tensors) -> bool:
    """Whether autograd would record an op on ``tensors`` (torch tensors; None and numpy ignored)."""
    return torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in tensors)


def refuse_grad(op: str, **tensors) -> None:
    """A ValueError naming the first tensor autograd would track, for ops with no backward: their
    output would be a graph leaf, and the gradients of everything before them silently lost."""
    if torch.is_grad_enabled():
        for name, t in tensors.items():
            if isinstance(t, torch.Tensor) and t.requires_grad:
                raise ValueError(f"{op} has no backward, but {name} requires grad; call it under "
                                 f"torch.no_grad() (or pass {name}.detach()) for inference")


def check_shape(x, name: str, expected: Sequence[int]) -> None:
    if tuple(x.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {tuple(x.shape)}")


def pair(value, name: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each >= minimum, as (for H, for W)."""
    values = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(values) != 2 or not all(isinstance(v, (int, np.integer)) for v in values):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(values) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(values[0]), int(values[1])


def padding4(value) -> tuple[int, int, int, int]:
    """Padding as (top, bottom, left, right) from an int, (pad_h, pad_w) or a 4-tuple; all >= 0."""
    if isinstance(value, (int, np.integer)):
        values = (value,) * 4
    else:
        values = tuple(value)
        if len(values) == 2:
            values = (values[0], values[0], values[1], values[1])
    if len(values) != 4 or not all(isinstance(v, (int, np.integer)) for v in values):
        raise ValueError(f"padding must be an int, (pad_h, pad_w) or (top, bottom, left, right), got {value!r}")
    if min(values) < 0:
        raise ValueError(f"padding must be >= 0, got {value!r}")
    return tuple(int(v) for v in values)


def output_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int,
                dilation: int, what: str) -> int:
    span = dilation * (kernel - 1) + 1
    padded = size + pad_before + pad_after
    if span > padded:
        raise ValueError(f"{what}: the kernel spans {span} pixels (kernel {kernel}, dilation "
                         f"{dilation}) but the padded input has only {padded}")
    return (padded - span) // stride + 1


def all_finite(a) -> bool:
    """Whether every entry of ``a`` is finite, by one sum: an inf or NaN makes it non-finite (as
    does an overflow, a false alarm that only costs the careful path)."""
    return bool(ops(a).xp.isfinite(a.sum()))


def keep_where(mask, values, finite: bool | None = None):
    """``values`` where ``mask`` holds, else exactly 0, with ``mask``'s shape broadcast.

    ``values * mask`` is the fast spelling (numpy's where is several times slower) but makes
    inf * 0 = NaN where the mask is off, so it is used only when every value is finite;
    ``finite`` says whether they are, when the caller checked once for many masks."""
    if finite is None:
        finite = all_finite(values)
    out = values * mask if finite else ops(values).xp.where(mask, values, 0)
    return out if isinstance(out, (np.ndarray, torch.Tensor)) else np.asarray(out)  # numpy 0-d


class _NumpyOps:
    xp = np

    @staticmethod
    def relu(x):
        # maximum keeps NaN and sends -inf to 0; out= keeps a 0-d result an array
        return np.maximum(x, 0, out=np.empty(x.shape, x.dtype))

    @staticmethod
    def pad(x, pads, value=0.0):
        top, bottom, left, right = pads
        if not any(pads):
            return x
        return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)

    @staticmethod
    def windows(x, kernel, stride, dilation):
        """(N, C, H, W) -> read-only view (N, C, OH, OW, KH, KW) of every kernel window."""
        (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
        view = np.lib.stride_tricks.sliding_window_view(x, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
        return view[:, :, ::sh, ::sw, ::dh, ::dw]

    @staticmethod
    def permute(x, axes):
        return x.transpose(axes)

    @staticmethod
    def zeros(shape, like):
        return np.zeros(shape, dtype=like.dtype)

    @staticmethod
    def amax(x, axis):
        return x.max(axis=axis, keepdims=True)

    @staticmethod
    def sum_keep(x, axis):
        return x.sum(axis=axis, keepdims=True)

    @staticmethod
    def arange(n, like):
        return np.arange(n)

    @staticmethod
    def take_last(x, index):
        return np.take_along_axis(x, index[..., None], axis=-1)[..., 0]


class _TorchOps:
    xp = torch

    @staticmethod
    def relu(x):
        # where, not clamp_min: its autograd gradient is relu's (0 at x = 0, passed at NaN)
        return torch.where(x <= 0, 0, x)

    @staticmethod
    def pad(x, pads, value=0.0):
        top, bottom, left, right = pads
        if not any(pads):
            return x
        return F.pad(x, (left, right, top, bottom), value=value)

    @staticmethod
    def windows(x, kernel, stride, dilation):
        (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
        view = x.unfold(2, dh * (kh - 1) + 1, sh).unfold(3, dw * (kw - 1) + 1, sw)
        return view[..., ::dh, ::dw]

    @staticmethod
    def permute(x, axes):
        return x.permute(axes)

    @staticmethod
    def zeros(shape, like):
        return torch.zeros(shape, dtype=like.dtype, device=like.device)

    @staticmethod
    def amax(x, axis):
        return x.amax(dim=axis, keepdim=True)

    @staticmethod
    def sum_keep(x, axis):
        return x.sum(dim=axis, keepdim=True)

    @staticmethod
    def arange(n, like):
        return torch.arange(n, device=like.device)

    @staticmethod
    def take_last(x, index):
        return torch.gather(x, -1, index[..., None])[..., 0]


def ops(x):
    """The numpy or torch flavour of the shared operations, for ``x``'s library."""
    return _NumpyOps if isinstance(x, np.ndarray) else _TorchOps
