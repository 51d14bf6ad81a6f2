"""Training: the run (`engine.train`) and its checkpointed state, its epoch loop, optimizer
and schedule, a deadline's re-plans of its length (`horizon`), lookahead,
early stopping, the device/precision runtime, validation and the classification metrics, and
the host-sync counter that holds the hot loop to its promise. May import every other
sub-package of `trainable`; nothing outside `trainable` imports from here except through
`trainable.train`, `trainable.evaluate` and the public names benchmarks time."""
