"""The GPU room: `sysdl gpu-check` (everything sysdl measures on a CUDA host, in one bounded run) and
`sysdl triton-report` (the Triton kernels compiled for sm_80/sm_90, with or without a GPU)."""
