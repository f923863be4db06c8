"""What fake replay teaches against real replay, noise and the baselines (``python -m benchmarks.replay_gap.gap``)."""
