"""sysdl kernels: pure compute (no training loops, no tracking, no file I/O beyond arguments)."""
