"""Model: the backbone registry (`registry`), airbench94's reusable pieces (`layers`) and the
network a config describes (`network`). May import `trainable.config`, `trainable.data` (for
the whitening statistics of a split) and `trainable.errors`; never the training loop."""
