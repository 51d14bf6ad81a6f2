"""Benchmarks of the trainer: engine overhead against a bare loop, loaders, big data,
optimizer, precision, recipe sweeps, full CIFAR-10 training and the roofline ceilings."""
