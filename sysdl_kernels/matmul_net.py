"""A trained (pruned, compact) Fashion-MNIST CNN lowered to a program of matrix multiplications.

    net = MatmulNet.from_checkpoint("runs/pruned_selected.pt")             # CPU backend
    logits = net(images)                                                    # (N, 1, 28, 28) float32
    net = MatmulNet.from_checkpoint(path, backend="triton")                 # sysdl_kernels.triton_ops

On the CPU each conv is an im2col gather feeding one GEMM with the bias folded in and ReLU
applied in place; on Triton each conv is one implicit-GEMM kernel (the gather inside the GEMM's
K loop, triton_ops.conv2d). Each dense layer is one GEMM. No nn.Conv2d / nn.Linear / F.conv2d / F.linear or
conv-family aten op runs (tests record the aten ops to prove it).

Without pooling (the networks the pruning sessions produce) the CPU backend also has a **fused**
program: the whole forward pass in one Numba kernel (``fused_cnn``), each thread carrying tiles of 4
images from the pixels to the logits in its caches, with no Python per layer; it is timed against
the layered program below on the first chunk of each size, and the faster one runs
(``program_choices``). The layered program:

The CPU backend processes the batch in chunks of images, so one chunk's activations stay in
cache from the first conv to the logits, in buffers reused across calls. For each conv it can
use one of four lowerings and takes the fastest, measured once per chunk size (``choices``
says which ran):
  * ``nhwc``: one row per output pixel, gathered from channels-last activations, times the
    (KH*KW*C, O) weight (torch addmm): the output is channels-last, ready for the next gather;
  * ``nchw``: per image the (C*KH*KW, OH*OW) matrix times the (O, C*KH*KW) weight (torch
    baddbmm);
  * ``taps``: shift-and-accumulate, out += w[:, c, i, j] * x[:, c, i:, j:] over every tap and
    input channel: no gather at all;
  * ``numba``: the ``nchw`` lowering image by image inside one Numba kernel
    (``numba_gemm.im2col_gemm``): each image's im2col matrix is gathered into a per-thread
    buffer that stays in cache and multiplied there, bias and ReLU fused.
Each dense layer runs on one of two GEMM engines, also the fastest measured per chunk size
(``dense_choices``): ``torch`` (addmm: MKL, AVX2 on this machine) or ``numba``
(``numba_gemm.gemm_bias_act``, register-tiled, AVX-512 where the CPU has it).
fc1's weight columns are permuted once, at load, to the order of the last conv's output
layout, so the flatten costs nothing.

Inference only: the images may have any layout (they are copied to NCHW-contiguous chunks),
an empty batch gives empty logits, and a batch that requires grad is refused while grad mode is
on (there is no backward; the logits would silently drop the gradient).
"""

from __future__ import annotations

import functools
import statistics
from dataclasses import dataclass

import torch

from sysdl_kernels._array import refuse_grad
from sysdl_kernels.runtime import interleaved_per_call

CONV_STRATEGIES = ("nhwc", "nchw", "taps", "numba")
PROGRAMS = ("fused", "layered")
DENSE_ENGINES = ("torch", "numba")
BACKENDS = ("cpu", "triton")


@dataclass
class ConvSpec:
    name: str
    weight: torch.Tensor          # (O, C, KH, KW)
    bias: torch.Tensor            # (O,)
    pool: str | None
    pool_kernel: int

    @property
    def shape(self):
        return tuple(self.weight.shape)


def _pool(x: torch.Tensor, kind: str | None, k: int, channels_last: bool) -> torch.Tensor:
    """Max/avg pooling as a strided window view and a reduction (no pooling op)."""
    if kind is None:
        return x
    h_dim, w_dim = (1, 2) if channels_last else (2, 3)
    windows = x.unfold(h_dim, k, k).unfold(w_dim, k, k)                       # (..., k, k)
    return windows.amax((-2, -1)) if kind == "max" else windows.mean((-2, -1))


def _fastest(options, run, min_sample: float = 1e-3) -> str:
    """The option whose ``run(option)`` takes least time per call: the median of 3 rounds
    interleaved across the options, a call shorter than ``min_sample`` repeated until a sample
    lasts that long (``runtime.interleaved_per_call``, which warms each up first: JIT, buffers).
    At batch 1 a call takes microseconds, and one preempted call once made the slower program win."""
    per_call, _ = interleaved_per_call({option: functools.partial(run, option) for option in options},
                                       repeats=3, min_sample=min_sample)
    medians = {option: statistics.median(times) for option, times in per_call.items()}
    return min(medians, key=medians.get)


class MatmulNet:
    def __init__(self, state: dict, config: dict, backend: str = "cpu", chunk: int = 1000,
                 strategy: str | dict | None = None, dense_engine: str | None = None, program: str | None = None):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.config, self.backend, self.chunk = config, backend, chunk
        self.image_shape = (config["in_channels"], config["image_size"], config["image_size"])   # (C, H, W)
        f32 = {k: v.detach().to(torch.float32).contiguous() for k, v in state.items()}
        self.convs = [ConvSpec(name, f32[f"{name}.weight"], f32[f"{name}.bias"], config.get("pool"),
                               config.get("pool_kernel", 2)) for name in ("conv1", "conv2")]
        self.fc1_w, self.fc1_b = f32["fc1.weight"], f32["fc1.bias"]
        self.fc2_w, self.fc2_b = f32["fc2.weight"], f32["fc2.bias"]
        self.fixed = ({c.name: strategy for c in self.convs} if isinstance(strategy, str) else dict(strategy or {}))
        for name, value in self.fixed.items():
            if value not in CONV_STRATEGIES:
                raise ValueError(f"{name}: strategy must be one of {CONV_STRATEGIES}, got {value!r}")
        if dense_engine is not None and dense_engine not in DENSE_ENGINES:
            raise ValueError(f"dense_engine must be one of {DENSE_ENGINES}, got {dense_engine!r}")
        self.dense_engine = dense_engine                  # None: the fastest, per chunk size
        if program is not None and program not in PROGRAMS:
            raise ValueError(f"program must be one of {PROGRAMS}, got {program!r}")
        if program == "fused" and not self.fusable:
            raise ValueError("the fused program needs a network without pooling; use program='layered'")
        if program == "fused" and (strategy is not None or dense_engine is not None):
            raise ValueError("strategy and dense_engine choose the layered program's lowerings; the fused "
                             "program has none: pass program='layered' or drop them")
        if program is not None and backend != "cpu":
            raise ValueError(f"program chooses between the CPU backend's programs; the {backend} backend has one")
        if program is None and (strategy is not None or dense_engine is not None):
            program = "layered"                           # a fixed lowering asks for the layered program
        self.program = program                            # None: the faster, per chunk size
        self.program_choices: dict[int, str] = {}         # chunk size -> "fused" or "layered"
        self._fused = None                                # fused_cnn.FusedCNN, built on first use
        self.choices: dict[int, dict[str, str]] = {}       # chunk size -> conv name -> strategy
        self.dense_choices: dict[int, dict[str, str]] = {}  # chunk size -> fc1/fc2 -> engine
        self._buffers: dict = {}
        self._fc1_by_layout: dict[bool, torch.Tensor] = {}
        self._device_weights: dict | None = None          # the Triton backend's, moved once
        if backend == "triton":
            from sysdl_kernels import triton_ops
            triton_ops.require_triton()

    @classmethod
    def from_checkpoint(cls, path, backend: str = "cpu", **kwargs) -> "MatmulNet":
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or "state_dict" not in payload or "config" not in payload:
            raise ValueError(f"{path} is not a sysdl checkpoint (needs 'config' and 'state_dict')")
        return cls(payload["state_dict"], payload["config"], backend=backend, **kwargs)

    @property
    def fusable(self) -> bool:
        """Whether ``fused_cnn`` computes this network (stride-1 convs without pooling)."""
        return all(conv.pool is None for conv in self.convs)

    # -- public ---------------------------------------------------------------------------------

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, classes) of images x (N, C, H, W) float32."""
        expected = self.image_shape
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch tensor, got {type(x).__name__}")
        shape = x.shape
        if len(shape) != 4 or shape[1:] != expected:
            raise ValueError(f"x must have shape (N, {', '.join(map(str, expected))}), got {tuple(shape)}")
        if x.dtype != torch.float32:
            raise TypeError(f"x must be float32, got {x.dtype}")
        if self.backend == "cpu" and not x.is_cpu:
            raise ValueError(f"the cpu backend takes x on the CPU, got {x.device}")
        if x.requires_grad:
            refuse_grad("MatmulNet", x=x)
            x = x.detach()
        n = shape[0]
        if self._fused is not None and self.program_choices.get(n) == "fused" and n <= self.chunk:
            # one chunk on the fused program: one kernel call, no torch op; under serial_below images
            # (the batch-1 path) on x as checked above, without FusedCNN's checks
            run = self._fused.small_batch if 0 < n < self._fused.serial_below else self._fused
            return torch.from_numpy(run(x.numpy()))
        with torch.inference_mode():
            return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach()                       # under no_grad x may still require grad; .numpy() refuses that
        if x.shape[0] == 0:
            return torch.empty(0, self.fc2_w.shape[0])
        if self.backend == "triton":
            return self._forward_triton(x)
        out = torch.empty(x.shape[0], self.fc2_w.shape[0])
        for start in range(0, x.shape[0], self.chunk):
            part = x[start:start + self.chunk]
            self._forward_chunk(part, out[start:start + len(part)])
        return out

    def describe(self) -> str:
        if self.backend == "triton":
            return "MatmulNet[triton] per conv: one implicit-GEMM kernel (bias, ReLU fused); per dense layer: one fused GEMM"
        def layered(n):
            return ", ".join(f"{k}={v}" for k, v in {**self.choices[n], **self.dense_choices[n]}.items())

        def ran(n, program):
            if program == "layered":
                return layered(n)
            return "fused (one Numba kernel" + (f"; the layered program, slower: {layered(n)})" if n in self.choices
                                                else ")")
        runs = "; ".join(f"chunk {n}: {ran(n, program)}" for n, program in self.program_choices.items())
        return f"MatmulNet[{self.backend}] {runs or '(not run yet)'}"

    # -- CPU backend ----------------------------------------------------------------------------

    def _forward_chunk(self, x: torch.Tensor, logits: torch.Tensor) -> None:
        """The logits of the chunk x, written into ``logits`` (N, classes)."""
        n = x.shape[0]
        if n not in self.program_choices:
            self._tune(x)
        if self.program_choices[n] == "fused":
            self._forward_fused(x, logits)
            return
        self._forward_layered(x, logits)

    def fused_params(self):
        """The network's parameters as ``fused_cnn.FusedParams`` (float32, fc1 in NCHW flatten order)."""
        from sysdl_kernels import fused_cnn
        c1, c2 = self.convs
        return fused_cnn.FusedParams.from_arrays(c1.weight.numpy(), c1.bias.numpy(), c2.weight.numpy(),
                                                 c2.bias.numpy(), self.fc1_w.numpy(), self.fc1_b.numpy(),
                                                 self.fc2_w.numpy(), self.fc2_b.numpy())

    def _forward_fused(self, x: torch.Tensor, logits: torch.Tensor) -> None:
        if self._fused is None:
            from sysdl_kernels import fused_cnn
            self._fused = fused_cnn.FusedCNN(self.fused_params(), self.image_shape)
        self._fused(x.numpy(), out=logits.numpy())

    def _forward_layered(self, x: torch.Tensor, logits: torch.Tensor) -> None:
        n = x.shape[0]
        choice, engines = self.choices[n], self.dense_choices[n]
        act, channels_last = x.contiguous(), False
        for conv in self.convs:
            act, channels_last = self._conv(conv, act, channels_last, choice[conv.name])
            act = _pool(act, conv.pool, conv.pool_kernel, channels_last)
        flat = act.reshape(n, -1)                                             # no copy: contiguous
        hidden = self._buffer(("fc1", n), (n, self.fc1_w.shape[0]))
        self._dense(flat, self._fc1_weight(channels_last), self.fc1_b, True, engines["fc1"], hidden)
        self._dense(hidden, self.fc2_w, self.fc2_b, False, engines["fc2"], logits)

    def _tune(self, x: torch.Tensor) -> None:
        """On this chunk size (unless fixed): per conv the fastest lowering and per dense layer the
        fastest engine of the layered program, then the faster of it and the fused program;
        each timed by ``_fastest`` (after a warm-up and JIT compile)."""
        n = x.shape[0]
        if self.program == "fused":
            self.program_choices[n] = "fused"
            return
        choice, act, channels_last = {}, x.contiguous(), False
        for conv in self.convs:
            options = [self.fixed[conv.name]] if conv.name in self.fixed else CONV_STRATEGIES
            choice[conv.name] = _fastest(options, lambda s: self._conv(conv, act, channels_last, s))
            act, channels_last = self._conv(conv, act, channels_last, choice[conv.name])
            act = _pool(act, conv.pool, conv.pool_kernel, channels_last)
        engines = [self.dense_engine] if self.dense_engine else DENSE_ENGINES
        flat, fc1_w = act.reshape(n, -1), self._fc1_weight(channels_last)
        hidden = self._buffer(("fc1", n), (n, self.fc1_w.shape[0]))
        logits = torch.empty(n, self.fc2_w.shape[0])
        dense = {"fc1": _fastest(engines, lambda e: self._dense(flat, fc1_w, self.fc1_b, True, e, hidden))}
        self._dense(flat, fc1_w, self.fc1_b, True, dense["fc1"], hidden)
        dense["fc2"] = _fastest(engines, lambda e: self._dense(hidden, self.fc2_w, self.fc2_b, False, e, logits))
        self.choices[n], self.dense_choices[n] = choice, dense
        programs = [self.program] if self.program else [p for p in PROGRAMS if p == "layered" or self.fusable]
        logits = torch.empty(n, self.fc2_w.shape[0])
        forward = {"fused": self._forward_fused, "layered": self._forward_layered}
        self.program_choices[n] = _fastest(programs, lambda p: forward[p](x, logits))

    @staticmethod
    def _dense(a, weight, bias, relu: bool, engine: str, out: torch.Tensor) -> None:
        """out = act(a @ weight.T + bias), weight in nn.Linear's (N, K) layout, on ``engine``."""
        if engine == "numba":
            from sysdl_kernels import numba_gemm
            numba_gemm.gemm_bias_act(a.numpy(), weight.numpy(), bias.numpy(), relu=relu, out=out.numpy())
        else:
            torch.addmm(bias, a, weight.T, out=out)
            if relu:
                out.relu_()

    def _buffer(self, key, shape) -> torch.Tensor:
        buf = self._buffers.get(key)
        if buf is None or tuple(buf.shape) != tuple(shape):
            buf = self._buffers[key] = torch.empty(shape)
        return buf

    def _fc1_weight(self, channels_last: bool) -> torch.Tensor:
        """fc1's weight with columns in the order the last conv's output flattens to."""
        if channels_last not in self._fc1_by_layout:
            w = self.fc1_w
            if channels_last:
                c = self.convs[-1].shape[0]
                hw = w.shape[1] // c
                side = int(round(hw ** 0.5))
                w = w.view(w.shape[0], c, side, side).permute(0, 2, 3, 1).reshape(w.shape[0], -1)
            self._fc1_by_layout[channels_last] = w.contiguous()
        return self._fc1_by_layout[channels_last]

    def _conv(self, conv: ConvSpec, x: torch.Tensor, channels_last: bool, strategy: str):
        """relu(conv(x) + b) by ``strategy``; x is (N, H, W, C) if channels_last else (N, C, H, W).
        Returns (output, output is channels_last)."""
        o, c, kh, kw = conv.shape
        n = x.shape[0]
        h, w = (x.shape[1], x.shape[2]) if channels_last else (x.shape[2], x.shape[3])
        oh, ow = h - kh + 1, w - kw + 1
        if strategy == "nhwc":
            src = x if channels_last else x.permute(0, 2, 3, 1).contiguous()  # (N, H, W, C)
            s_n, s_h, s_w, _ = src.stride()
            window = src.as_strided((n, oh, ow, kh, kw * c), (s_n, s_h, s_w, s_h, 1))
            cols = self._buffer((conv.name, "cols", n), (n, oh, ow, kh, kw * c))
            cols.copy_(window)                                                # the gather
            out = self._buffer((conv.name, "nhwc", n), (n * oh * ow, o))
            weight = self._weight(conv, "nhwc")
            torch.addmm(conv.bias, cols.view(n * oh * ow, kh * kw * c), weight, out=out).relu_()
            return out.view(n, oh, ow, o), True
        src = x.permute(0, 3, 1, 2).contiguous() if channels_last else x       # (N, C, H, W)
        out = self._buffer((conv.name, "nchw", n), (n, o, oh, ow))
        if strategy == "numba":
            from sysdl_kernels import numba_gemm
            scratch = self._buffer((conv.name, "scratch", n), numba_gemm.scratch_shape(src.shape, conv.shape))
            numba_gemm.im2col_gemm(src.numpy(), conv.weight.numpy(), conv.bias.numpy(), relu=True,
                                   out=out.numpy(), scratch=scratch.numpy())
            return out, False
        if strategy == "nchw":
            s_n, s_c, s_h, s_w = src.stride()
            window = src.as_strided((n, c, kh, kw, oh, ow), (s_n, s_c, s_h, s_w, s_h, s_w))
            cols = self._buffer((conv.name, "colsT", n), (n, c, kh, kw, oh, ow))
            cols.copy_(window)
            torch.baddbmm(conv.bias.view(1, o, 1), self._weight(conv, "nchw").expand(n, o, -1),
                          cols.view(n, c * kh * kw, oh * ow), out=out.view(n, o, oh * ow))
        elif strategy == "taps":
            out.copy_(conv.bias.view(1, o, 1, 1).expand(n, o, oh, ow))
            taps = self._weight(conv, "taps")                                  # (C, KH, KW, 1, O, 1, 1)
            for ci in range(c):
                for i in range(kh):
                    for j in range(kw):
                        out.addcmul_(src[:, ci:ci + 1, i:i + oh, j:j + ow], taps[ci, i, j])
        else:
            raise ValueError(f"strategy must be one of {CONV_STRATEGIES}, got {strategy!r}")
        return out.relu_(), False

    def _weight(self, conv: ConvSpec, strategy: str) -> torch.Tensor:
        key = (conv.name, "weight", strategy)
        if key not in self._buffers:
            w = conv.weight
            o = w.shape[0]
            self._buffers[key] = {
                "nhwc": lambda: w.permute(2, 3, 1, 0).reshape(-1, o).contiguous(),     # (KH*KW*C, O)
                "nchw": lambda: w.reshape(o, -1).contiguous(),                          # (O, C*KH*KW)
                "taps": lambda: w.permute(1, 2, 3, 0).reshape(w.shape[1], w.shape[2], w.shape[3], 1, o, 1, 1)
                .contiguous(),
            }[strategy]()
        return self._buffers[key]

    # -- Triton backend -------------------------------------------------------------------------

    def _forward_triton(self, x: torch.Tensor) -> torch.Tensor:
        """Each conv one implicit-GEMM kernel (no im2col matrix in memory; bias and ReLU fused),
        activations channels-last from the first conv on; each dense layer one fused GEMM."""
        from sysdl_kernels import triton_ops
        weights = self._triton_weights()
        act, channels_last = x.to(weights["device"]), False
        for conv, (weight, bias) in zip(self.convs, weights["convs"]):
            act = triton_ops.conv2d(act, weight, bias, relu=True, channels_last=channels_last)
            act = act.permute(0, 2, 3, 1)                                 # (N, OH, OW, O): a view, no copy
            channels_last = True
            act = _pool(act, conv.pool, conv.pool_kernel, channels_last)
        flat = act.reshape(act.shape[0], -1)
        hidden = triton_ops.gemm_bias_relu(flat, *weights["fc1"], relu=True)
        logits = triton_ops.gemm_bias_relu(hidden, *weights["fc2"], relu=False)
        return logits.cpu()

    def _triton_weights(self) -> dict:
        """The parameters on the Triton device, in the layouts the kernels read, moved once."""
        if self._device_weights is None:
            from sysdl_kernels import triton_ops
            device = triton_ops.device()
            self._device_weights = {
                "device": device,
                "convs": [(conv.weight.to(device), conv.bias.to(device)) for conv in self.convs],
                "fc1": (self._fc1_weight(True).T.contiguous().to(device), self.fc1_b.to(device)),
                "fc2": (self.fc2_w.T.contiguous().to(device), self.fc2_b.to(device)),
            }
        return self._device_weights
