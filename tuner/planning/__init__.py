"""Planning: from an image folder and a time budget to a search spec sized for this machine.

`machine` says what the machine is (cores, memory, GPUs, bf16), `calibrate` measures how fast
the planned model trains here, `plan` sizes the run (image size, width, subset, trials,
epochs, the split of the budget between search and retraining) and renders it as a commented
spec (`tuner init` writes it; `tuner run --data-root DIR --time-budget T` runs it). May import
`tuner.spec`, `tuner.results.comparison` (the validation split's noise, arithmetic) and
`trainable`; never Ray.
"""
