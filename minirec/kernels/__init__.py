"""Fused training steps: the same maths as the layers, one pass over the data.

``numba_cpu`` holds the CPU kernels (Numba), ``cupy_gpu`` the GPU ones (CuPy). Each is a plain
function written beside the reference it must match; the parity tests in ``tests/`` prove it.
Nothing here is imported by ``import minirec``: kernels compile on first use.
"""
