"""Benchmarks of recovery: killing a run at many moments and resuming it, and a search
whose results live in a bucket."""
