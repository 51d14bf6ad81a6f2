"""The run's stages, resumable one by one: `experiment` runs prepare, search, tables,
plan_retrain, retrain, export, deploy and register in order and records each in the manifest
(`manifest`); `winner` is the tables stage (the winner, or the base config when the winner's
gain is noise); `final_plan` gives the final training its epochs, timed by `probe`; `retrain`
refits the winner and touches the test split once; `deploy` exports it with its model card.
May import every other sub-package of `tuner`, except `reporting`."""
