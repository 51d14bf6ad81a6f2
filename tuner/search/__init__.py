"""The search: Optuna behind Ray Tune (`study`, `searcher`, `warm_start`), the thin adapter
that runs the unchanged trainer in a trial (`adapter`, with per-trial memory `limits`), the
Tune run itself (`run`), ASHA that never cuts the base config's trial (`schedulers`), the end
of a search that stopped paying (`patience`), the reproducible mode's lockstep batches
(`lockstep`), its live progress table (`progress`) and how it stops from outside (`stopping`). May import `tuner.spec`, `tuner.results` and `trainable`;
never the stages."""
