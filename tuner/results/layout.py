"""The results folder's file names, owned by one object.

`<storage_path>/<name>/` is Ray Tune's own experiment directory (`tuner.pkl`,
`experiment_state-*.json`, one `trial-<id>/` folder per trial, readable by `Tuner.restore` and
`ExperimentAnalysis`) plus the files this project writes, each named only here:

    search_space.yaml       the validated search-space file (written before the first trial)
    manifest.json           provenance, the stages done so far, status and outcome
    optuna_study.journal    the Optuna study (optuna-dashboard opens it)
    trials.parquet          every reported epoch of every trial
    summary.csv             one row per trial, best first, with status and reason
    best/runs/seed-<k>/     each retraining run of the winner (trainer run folder + outcome.json)
    best/checkpoint.pt      the exported model (the seed with the best validation score)
    best/test_metrics/      its test metrics, per class, confusion matrix
    best/test_summary.json  test accuracy mean ± std over seeds
    best/config.yaml        the winner's trainer config
    best_config.yaml        the same, for `python -m trainable train --config`
    model.onnx              the exported model, preprocessing inside (`tuner export`, and
                            every finished run); model.torchscript.pt on request
    model_card.md, .json    what it is, its input contract, test metrics, parity, latency
    report/                 `tuner report`'s HTML and plots

Results in an object store (`storage_path: s3://...`) keep the same layout under the URI;
the driver works in a local copy of the project's own files (`tuner.results.bucket`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainable.files.run_dir import MODEL_FILES


@dataclass(frozen=True)
class ResultsDir:
    """`path` is the folder; when the results live in an object store, `remote` is their URI
    and `path` the driver's working copy of the project's own files."""

    path: Path
    remote: str | None = None

    @property
    def where(self) -> str:
        """Where the results live (the URI, or the folder): how messages name them, and Ray
        Tune's experiment directory."""
        return self.remote or str(self.path)

    def remote_of(self, local: Path) -> str:
        """The URI of a file or folder of the working copy (results in a bucket only)."""
        if self.remote is None:
            raise ValueError(f"{self.path} is not a bucket's working copy")
        return "/".join([self.remote, local.relative_to(self.path).as_posix()])

    def own_files(self) -> list[Path]:
        """The files and folders this project writes at the top of the folder (everything else
        there is Ray Tune's), the manifest last: a copy holding it holds every file it records.
        `runs` (inside `best`) is the only large part."""
        own = [self.spec, self.study, self.trials, self.summary, self.best, self.report]
        served = [self.model("onnx"), self.model("torchscript"), *self.model_card()]
        return [*own, self.best_config("yaml"), self.best_config("json"), *served, self.manifest]

    def owned(self, rel: str, runs: bool = True) -> bool:
        """Whether `rel` (a path inside the folder) is one of this project's files; with
        `runs=False`, not one of the retraining runs."""
        in_runs = (self.path / rel).is_relative_to(self.runs)
        top = rel.split("/", 1)[0]
        return top in {p.name for p in self.own_files()} and (runs or not in_runs)

    @property
    def spec(self) -> Path:
        return self.path / "search_space.yaml"

    @property
    def manifest(self) -> Path:
        return self.path / "manifest.json"

    @property
    def study(self) -> Path:
        return self.path / "optuna_study.journal"

    @property
    def trials(self) -> Path:
        return self.path / "trials.parquet"

    @property
    def summary(self) -> Path:
        return self.path / "summary.csv"

    @property
    def tune_state(self) -> Path:
        return self.path / "tuner.pkl"

    def tune_experiment_states(self) -> list[Path]:
        return sorted(self.path.glob("experiment_state-*.json"))

    @property
    def best(self) -> Path:
        return self.path / "best"

    @property
    def runs(self) -> Path:
        return self.best / "runs"

    def retrain_run(self, seed: int) -> Path:
        return self.runs / f"seed-{seed}"

    @staticmethod
    def run_outcome(run_dir: Path) -> Path:
        """A retraining run's outcome (test metrics included): written last, so it marks the
        run as done."""
        return run_dir / "outcome.json"

    @property
    def best_checkpoint(self) -> Path:
        return self.best / "checkpoint.pt"

    @property
    def test_metrics(self) -> Path:
        return self.best / "test_metrics"

    @property
    def test_summary(self) -> Path:
        return self.best / "test_summary.json"

    @property
    def best_trainer_config(self) -> Path:
        return self.best / "config.yaml"

    def best_config(self, fmt: str = "yaml") -> Path:
        return self.path / f"best_config.{fmt}"

    def model(self, fmt: str) -> Path:
        """The exported model: `onnx` or `torchscript`."""
        return self.path / MODEL_FILES[fmt]  # the names a trainer run's export uses too

    def model_card(self) -> tuple[Path, Path]:
        """(model_card.md, model_card.json)"""
        return self.path / "model_card.md", self.path / "model_card.json"

    @property
    def report(self) -> Path:
        return self.path / "report"

    def is_experiment(self) -> bool:
        return self.spec.is_file() and self.manifest.is_file()
