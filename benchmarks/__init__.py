"""Benchmarks, run by hand from the repository root as modules, e.g. ``python -m benchmarks.tables.run list``."""
