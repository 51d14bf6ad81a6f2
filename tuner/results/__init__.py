"""The results folder: its file names (`layout.ResultsDir`, the one owner of them), what its
manifest records (`records`: typed stage records and the outcome; `comparison`: the winner
against the base config), the working copy of a search kept in an object store (`bucket`),
the tables made from Tune's results (`tables`) and reading finished folders for
`list`/`show`/`report` (`catalog`). May import `tuner.spec` and `trainable`; never Ray Tune's
execution, the stages or the CLI."""
