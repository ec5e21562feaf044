"""Gradient baselines, one per file, on a shared base that works in [0,1] pixel space."""
