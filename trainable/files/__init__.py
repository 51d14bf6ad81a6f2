"""Files: atomic writes, checkpoints (`torch.load(weights_only=True)` only), a trainer run's
folder (`run_dir.RunDir`, its file names in one place) and the storage layer (a local path or
an object-store URI through `pyarrow.fs`). The bottom of `trainable`:
imports only `trainable.errors`."""
