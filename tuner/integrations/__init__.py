"""Outside systems: the Ray cluster (`cluster`: connecting, pre-flight checks, sharing data)
and MLflow (`tracking`, `tracking_callback`). May import `tuner.spec`, `tuner.results` and
`trainable`; MLflow is imported only when tracking is on."""
