"""Every shipped Triton kernel compiled for real GPUs (sm_80, sm_90) on a machine without one.

    from sysdl_kernels.triton_compile import compile_all
    rows = compile_all(targets=(80, 90))        # one dict per kernel x configuration x precision x target

Triton compiles a kernel to PTX and a cubin for a CUDA target with no GPU present, with the
ptxas inside the triton wheel (``triton.compile(ASTSource(fn, signature, constexprs),
target=GPUTarget("cuda", 90, 32))``). This walks every kernel of ``triton_kernels`` with every
configuration its launcher can run (the autotune lists, the fixed im2col block) and both
precisions, and reads from the cubin (``cuobjdump --dump-resource-usage``, in the wheel too) what
the GPU compiler made of it: registers per thread, the per-thread stack frame (these kernels
call no function, so a frame is registers spilled to local memory), static shared memory, plus
the dynamic shared memory Triton requests (its software pipeline's buffers). A compile error raises: the interpreter accepts
programs the GPU compiler rejects, and this is where they are caught without a GPU.

Theoretical occupancy follows the CUDA occupancy calculator: blocks per SM are the fewest that
registers (allocated per warp, 256 at a time), shared memory (plus 1 KiB the driver reserves
per block), the 64-warp and 32-block limits allow. A configuration is flagged when it spills,
when it cannot keep two blocks on an SM (no other block hides its latency), and is an error when
its shared memory exceeds the per-block limit (Triton would refuse it at launch). SM limits:
NVIDIA CUDA C++ Programming Guide, "Technical Specifications per Compute Capability".

The tile's arithmetic intensity is FLOPs per byte loaded from global memory (L2) per K step:
2*BM*BN*BK / (4*(BM*BK + BK*BN)) = BM*BN / (2*(BM + BN)). Ints are compiled as generic int32
(at run time Triton may specialise a stride of 1 or a multiple of 16, which changes the code a
little); pointers as 16-byte aligned, as torch allocates them.

Works from a process that imported the kernels under TRITON_INTERPRET=1 too (the tests): the
compiling then happens in a child process without it (``python -m sysdl_kernels.triton_compile
90`` prints one target's rows as JSON).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

TARGETS = (80, 90)


@dataclass(frozen=True)
class SMLimits:
    name: str
    registers: int = 65536
    max_warps: int = 64
    max_blocks: int = 32
    shared_per_sm: int = 0
    shared_per_block: int = 0
    reserved_per_block: int = 1024


SM_LIMITS = {
    80: SMLimits("sm_80 (A100)", shared_per_sm=164 * 1024, shared_per_block=163 * 1024),
    90: SMLimits("sm_90 (H100, H200)", shared_per_sm=228 * 1024, shared_per_block=227 * 1024),
}


class CompileError(RuntimeError):
    """A shipped kernel configuration that the GPU compiler rejects or that could not launch."""


@dataclass(frozen=True)
class KernelCase:
    """One kernel with one configuration: what triton.compile needs and the tile's shape."""
    kernel: str
    config: dict            # constexprs
    num_warps: int
    num_stages: int
    flops_per_byte: float   # of the tile, per K step (0 for a copy)

    @property
    def label(self) -> str:
        blocks = "x".join(str(self.config[k]) for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K") if k in self.config)
        precision = self.config.get("PRECISION")
        return f"{blocks} w{self.num_warps} s{self.num_stages}" + (f" {precision}" if precision else "")


def _tile_intensity(block_m: int, block_n: int) -> float:
    return block_m * block_n / (2 * (block_m + block_n))


def kernel_cases() -> list[KernelCase]:
    """Every (kernel, configuration, precision) the launchers in triton_ops can run on a GPU."""
    from sysdl_kernels import triton_kernels as tk
    cases = []
    for precision in tk.PRECISIONS:
        for name, configs, extra in (("gemm_kernel", tk.GEMM_CONFIGS, {"RELU": True}),
                                     ("conv_kernel", tk.CONV_CONFIGS, {"HAS_BIAS": True, "RELU": True})):
            for m, n, k, warps, stages in configs:
                config = {**extra, "PRECISION": precision, "BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k}
                cases.append(KernelCase(name, config, warps, stages, _tile_intensity(m, n)))
    m, k, warps = tk.IM2COL_BLOCK
    cases.append(KernelCase("im2col_kernel", {"BLOCK_M": m, "BLOCK_K": k}, warps, 1, 0.0))
    return cases


def _signature(fn, constexprs: dict) -> tuple[dict, dict]:
    """(signature, attrs): pointers '*fp32' (16-byte aligned), constexprs as such, other args int32."""
    signature, attrs = {}, {}
    for index, name in enumerate(fn.arg_names):
        if name in constexprs:
            signature[name] = "constexpr"
        elif name.endswith("_ptr"):
            signature[name] = "*fp32"
            attrs[(index,)] = [["tt.divisibility", 16]]
        else:
            signature[name] = "i32"
    return signature, attrs


def _resource_usage(cubin: bytes) -> dict:
    """Registers, stack frame (spills: these kernels call nothing, so their frame is spill space)
    and static shared memory of Triton's own cubin, from cuobjdump --dump-resource-usage."""
    from triton import knobs
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        result = subprocess.run([knobs.nvidia.cuobjdump.path, "--dump-resource-usage", str(path)],
                                capture_output=True, text=True, timeout=120)
    found = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", result.stdout)
    if result.returncode != 0 or not found:
        raise CompileError(f"cuobjdump could not read the cubin: {(result.stdout + result.stderr)[-2000:]}")
    registers, stack, shared, local = map(int, found.groups())
    return {"registers": registers, "spill_bytes": stack + local, "static_shared": shared}


def occupancy(registers: int, shared: int, warps: int, limits: SMLimits) -> dict:
    """Theoretical blocks and warps per SM, and what limits them (the occupancy calculator's rules)."""
    regs_per_warp = -(-max(registers, 1) * 32 // 256) * 256
    by_limit = {"registers": (limits.registers // regs_per_warp) // warps,
                "warps": limits.max_warps // warps,
                "blocks": limits.max_blocks}
    if shared:
        by_limit["shared memory"] = limits.shared_per_sm // (shared + limits.reserved_per_block)
    blocks = min(by_limit.values())
    return {"blocks_per_sm": blocks, "warps_per_sm": blocks * warps,
            "occupancy": blocks * warps / limits.max_warps,
            "limited_by": min(by_limit, key=by_limit.get)}


def compile_case(case: KernelCase, capability: int) -> dict:
    """Compile one case for sm_<capability>; the report row (raises CompileError on failure)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from sysdl_kernels import triton_kernels as tk
    limits = SM_LIMITS[capability]
    if _interpreting():
        raise RuntimeError("compile_case needs a process without TRITON_INTERPRET=1 (compile_all spawns one)")
    fn = getattr(tk, case.kernel)
    signature, attrs = _signature(fn, case.config)
    try:
        compiled = triton.compile(ASTSource(fn, signature, case.config, attrs),
                                  target=GPUTarget("cuda", capability, 32),
                                  options={"num_warps": case.num_warps, "num_stages": case.num_stages})
    except Exception as err:                                      # triton raises many types
        raise CompileError(f"{case.kernel} {case.label} does not compile for {limits.name}: "
                           f"{type(err).__name__}: {err}") from err
    info = _resource_usage(compiled.asm["cubin"])
    shared = info["static_shared"] + compiled.metadata.shared
    row = {"kernel": case.kernel, "config": case.label, "target": f"sm_{capability}",
           "warps": case.num_warps, "stages": case.num_stages, "registers": info["registers"],
           "spill_bytes": info["spill_bytes"], "shared_bytes": shared,
           **occupancy(info["registers"], shared, case.num_warps, limits),
           "tile_flops_per_byte": round(case.flops_per_byte, 2)}
    flags = []
    if shared > limits.shared_per_block:
        flags.append(f"needs {shared:,} B shared memory, over the {limits.shared_per_block:,} B per block: "
                     f"cannot launch")
    if row["spill_bytes"]:
        flags.append(f"spills {row['spill_bytes']} B to local memory")
    if row["blocks_per_sm"] < 2 and not flags[:1]:
        flags.append(f"{row['blocks_per_sm']} block per SM (limited by {row['limited_by']})")
    row["flags"] = "; ".join(flags)
    row["launchable"] = shared <= limits.shared_per_block
    return row


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def compile_all(targets=TARGETS, progress: bool = False, timeout: float = 1800) -> list[dict]:
    """Every kernel case compiled for every target; a compile error raises CompileError.

    One child process per target, run side by side (about a minute per target on one core of
    this machine, less with Triton's cache warm). The children also keep the compiling out of a
    process that runs the kernels under the interpreter (TRITON_INTERPRET=1, as the tests do):
    triton decides at import whether its functions are interpreted, and the GPU front end needs
    them compiled."""
    if len(targets) == 1 and not _interpreting():
        cases = kernel_cases()
        if progress:
            from tqdm import tqdm
            cases = tqdm(cases, desc=f"compiling for sm_{targets[0]}", unit="kernel", position=_position())
        return [compile_case(case, targets[0]) for case in cases]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    children = []
    for index, target in enumerate(targets):
        command = [sys.executable, "-m", "sysdl_kernels.triton_compile", str(target)] + (["--progress"] if progress else [])
        children.append(subprocess.Popen(command, env={**env, "SYSDL_PROGRESS_POSITION": str(index)},
                                         stdout=subprocess.PIPE, stderr=None if progress else subprocess.PIPE,
                                         text=True, cwd=Path(__file__).resolve().parents[1]))
    rows, errors = [], []
    for child in children:
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for each in children:
                each.kill()
            raise CompileError(f"compiling took more than {timeout:.0f} s; stopped")
        if child.returncode != 0:
            lines = (err or "").strip().splitlines()
            errors.append(next((line for line in reversed(lines) if line.startswith("CompileError")),
                               lines[-1] if lines else f"a compiling process exited with {child.returncode}"))
        else:
            rows += json.loads(out)
    if errors:
        raise CompileError("; ".join(errors))
    return rows


def _position() -> int:
    return int(os.environ.get("SYSDL_PROGRESS_POSITION", "0"))


def _main(argv: list[str]) -> int:
    """The child of compile_all: rows as JSON on stdout; a CompileError's message last on stderr."""
    progress = "--progress" in argv
    targets = tuple(int(a) for a in argv if a != "--progress") or TARGETS
    unknown = [t for t in targets if t not in SM_LIMITS]
    if unknown:
        print(f"CompileError: unknown target(s) {unknown}; known: {sorted(SM_LIMITS)}", file=sys.stderr)
        return 1
    try:
        rows = compile_all(targets, progress=progress)
    except CompileError as err:
        print(f"CompileError: {err}", file=sys.stderr)
        return 1
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
