"""The run's stages, resumable one by one: `experiment` runs prepare, search, tables,
retrain, export and register in order and records each in the manifest (`manifest`);
`retrain` refits the winner and touches the test split once. May import every other
sub-package of `tuner`, except `reporting`."""
