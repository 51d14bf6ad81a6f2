"""Planning: from an image folder and a time budget to a search spec sized for this machine.

`machine` says what the machine is (cores, memory, GPUs, bf16), `recipe` what is trained
(image size, width, the base config, the searched space), `calibrate` measures how fast it
trains here, `width` climbs to the widest the budget buys, `search_size` sizes the search
(subset, trials, horizon) and says what its validation split can tell apart, and `plan`
sizes the run (the split of the budget between search and retraining, epochs) and renders
it as a commented spec (`tuner init` writes it; `tuner run --data-root DIR --time-budget T` runs it). May import
`tuner.spec`, `tuner.results.comparison` (the validation split's noise, arithmetic) and
`trainable`; never Ray.
"""
