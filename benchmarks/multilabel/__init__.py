"""Seed 004's tables on Scenes (``python -m benchmarks.multilabel.run``)."""
