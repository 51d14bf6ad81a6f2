"""Files: atomic writes, checkpoints (`torch.load(weights_only=True)` only) and the storage
layer (a local path or an object-store URI through `pyarrow.fs`). The bottom of `trainable`:
imports only `trainable.errors`."""
