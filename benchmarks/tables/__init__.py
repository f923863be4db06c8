"""Seed 002's and seed 003's tables on Scenes (``python -m benchmarks.tables.run``)."""
