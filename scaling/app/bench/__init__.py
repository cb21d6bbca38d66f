"""Benchmarks: `python -m scaling.app.bench kernels` (per-op kernel timings) and `python -m scaling.app.bench train` (end-to-end tokens/s and MFU)."""
