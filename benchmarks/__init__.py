"""Measurement scripts; their outputs in benchmarks/out/ make docs/results.md (``python benchmarks/results_page.py``)."""
