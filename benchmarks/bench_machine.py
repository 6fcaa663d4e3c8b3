"""asv benchmarks: this machine's limits, recorded beside every benchmark run (sysdl_kernels/peaks.py).

``MachineCompute.track_fma_peak`` is the theoretical fp32 FMA peak (cores x lanes x FMA units x 2 x
clock, from /proc/cpuinfo and sysdl's table of cores); ``MachineCompute.track_gemm`` the measured
fp32 GEMM rate of each path sysdl uses; ``MachineBandwidth.track_triad`` the STREAM-style triad
bandwidth in each cache level and in main memory. `sysdl bench-table` reads them from the same
machine's results to draw each family's roofline, so a table made on another machine uses that
machine's peaks. `sysdl machine` prints the same figures with where each factor came from.
"""

from __future__ import annotations

from benchmarks.common import threads

GEMM_PATHS = ["torch.mm", "F.linear", "numpy @", "sysdl numba"]
LEVELS = ["L1", "L2", "L3", "memory"]


class MachineCompute:
    timeout = 300
    unit = "GFLOP/s"

    def setup(self, *args):
        self.threads = threads()

    def track_fma_peak(self):
        """Theoretical fp32 peak of the threads used: not a measurement."""
        from sysdl_kernels import peaks
        return peaks.theoretical_fma_peak(peaks.cpu_facts(), self.threads) / 1e9

    def track_gemm(self, path):
        from sysdl_kernels import peaks
        return peaks.gemm_rates()[path] / 1e9

    track_gemm.params = GEMM_PATHS
    track_gemm.param_names = ["path"]


class MachineBandwidth:
    timeout = 300
    unit = "GB/s"
    params = LEVELS
    param_names = ["level"]

    def setup(self, level):
        threads()
        from sysdl_kernels import peaks
        self.facts = peaks.cpu_facts()
        if level != "memory" and not any(f"L{c['level']}" == level for c in self.facts["caches"]):
            raise NotImplementedError(f"no {level} cache reported on this machine")

    def track_triad(self, level):
        from sysdl_kernels import peaks
        return peaks.cache_bandwidths(self.facts, levels=(level,))[level] / 1e9
