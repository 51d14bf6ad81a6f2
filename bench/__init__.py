"""Benchmarks: each module is a script run from the repository root as `python -m bench.<group>.<name>`,
printing a table and writing JSON under `bench/results/`. Grouped by what they measure:
`trainer`, `search`, `faults`, `device` (the GPU session), and `support` (shared helpers). May
import `trainable` and `tuner`; never test code."""
