"""Helpers shared by the benchmarks and the tests: environment facts and JSON output (`env`),
memory sampling (`memory`), stopping a run at a chosen moment (`killing`), real local services
(`services`: a moto S3 server) and tiny search specs (`specs`)."""
