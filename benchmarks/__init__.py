"""Benchmark scripts that regenerate benchmarks/README.md (``python -m benchmarks.report``)."""
