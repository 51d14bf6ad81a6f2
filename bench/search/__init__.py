"""Benchmarks of the search: the main job end to end, search quality, Tune's per-trial
overhead and fixed cost, prestarted workers, and MLflow tracking overhead."""
