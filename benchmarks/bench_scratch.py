"""asv benchmarks: one training epoch of the from-scratch CNN (Numba layers) against the same
network in PyTorch on the CPU, over the Fashion-MNIST training images."""

from __future__ import annotations

from benchmarks.common import fashion_batches, threads
from sysdl_kernels.scratch.epoch import epoch_times
from sysdl_kernels.scratch.net import ScratchConfig


class ScratchEpoch:
    timeout = 900
    unit = "x"
    params = [60_000]
    param_names = ["images"]

    def setup(self, images):
        threads()
        self.x, self.y = fashion_batches(images)

    def track_numba_epoch_vs_pytorch(self, images):
        """Numba scratch epoch time / PyTorch CPU epoch time, same batches: the issue asks <= 5."""
        times = epoch_times(self.x, self.y, ScratchConfig(image_size=self.x.shape[-1]))
        return times["numba scratch"] / times["pytorch cpu"]
