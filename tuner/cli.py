"""`python -m tuner run|init|validate|resume|export|report|list|show`: hyperparameter search on Ray Tune."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainable.command import prog, resolve_example, version
from trainable.config import deep_merge, parse_overrides, read_yaml
from trainable.errors import ConfigError, ExitCode, UserError
from trainable.files.storage import is_uri
from tuner.results.layout import ResultsDir
from tuner.spec import SearchSpec, validate_spec

if TYPE_CHECKING:
    from tuner.results.records import Outcome

EXAMPLES = {
    "run": """examples:
  python -m tuner run --data-root ~/my-images --time-budget 10m   # no spec: planned for you
  python -m tuner run search_spaces/quick.yaml --data-root ../shared/datasets/cifar10-jpeg
  python -m tuner run search_spaces/default.yaml --address auto --storage-path /shared/results
  python -m tuner run search_spaces/default.yaml --address auto --storage-path s3://bucket/searches
  python -m tuner run search_spaces/default.yaml --cpu      # same search without GPUs
""",
    "init": """examples:
  python -m tuner init ~/my-images --time-budget 10m           # writes my-images.yaml
  python -m tuner init ~/my-images --time-budget 1h --out spec.yaml
""",
    "validate": "examples:\n  python -m tuner validate search_spaces/default.yaml\n",
    "resume": """examples:
  python -m tuner resume results/cifar10-quick
  python -m tuner resume s3://bucket/searches/cifar10-default
""",
    "export": """examples:
  python -m tuner export results/cifar10-quick --format json
  python -m tuner export results/cifar10-quick --format onnx         # model.onnx + model_card.md
""",
    "report": """examples:
  python -m tuner report results/cifar10-quick      # writes results/cifar10-quick/report/
  python -m tuner report results/20260101-120000/cifar10-default --top 20
""",
    "list": """examples:
  python -m tuner list                 # experiments under results/
  python -m tuner list /shared/results
  python -m tuner list s3://bucket/searches
""",
    "show": "examples:\n  python -m tuner show results/cifar10-quick\n",
}


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog=prog("tuner"), description=__doc__, formatter_class=fmt)
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    p.add_argument("--version", action="version", version=version())
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, epilog=EXAMPLES[name], formatter_class=fmt)
        sp.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show tracebacks for errors",
        )
        return sp

    def ray_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--address", help="join an existing Ray cluster (auto, HOST:PORT or ray://HOST:PORT)"
        )
        sp.add_argument("--num-cpus", type=int, help="CPUs for a local Ray (default: all)")
        sp.add_argument(
            "--dashboard",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="start the Ray dashboard with a local Ray (default: on where ray[default] is "
            "installed; a cluster has its own)",
        )
        sp.add_argument(
            "--dashboard-host",
            default="127.0.0.1",
            help="interface the dashboard listens on (default 127.0.0.1; it can run jobs: "
            "prefer an SSH tunnel to an open port)",
        )

    def set_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a spec key, dotted (num_samples=4, base.batch_size=256, "
            "scheduler.max_t=8); repeatable",
        )

    r = add("run", "run a search from a YAML search-space file, or from an image folder")
    r.add_argument(
        "spec",
        type=Path,
        nargs="?",
        help="search-space YAML (see search_spaces/); without it, --data-root and "
        "--time-budget plan the run as 'tuner init' would",
    )
    r.add_argument("--data-root", help="where the dataset lives (overrides base.dataset.root)")
    r.add_argument(
        "--time-budget",
        help="without a spec: the whole run's wall time (600, 10m, 1.5h), search and final "
        "training included",
    )
    r.add_argument(
        "--name", help="without a spec: the results folder's name (default: the folder's)"
    )
    r.add_argument(
        "--storage-path",
        help="where the results folder goes: a folder or a bucket URI such as s3://bucket/prefix "
        "(default: the file's storage_path)",
    )
    r.add_argument(
        "--cpu", action="store_true", help="run on CPUs only: no GPU per trial, device cpu"
    )
    set_arg(r)
    ray_args(r)

    i = add("init", "inspect an image folder and this machine; write the spec 'run' would use")
    i.add_argument(
        "data_root", type=Path, help="root/train/<class>/* [root/test/...], or root/<class>/*"
    )
    i.add_argument("--time-budget", default="10m", help="the whole run's wall time (default 10m)")
    i.add_argument("--out", type=Path, help="where to write the spec (default: NAME.yaml here)")
    i.add_argument("--name", help="the results folder's name (default: the data folder's)")

    v = add("validate", "check a search-space file; starts nothing, writes nothing")
    v.add_argument("spec", type=Path)
    v.add_argument("--data-root", help=argparse.SUPPRESS)
    set_arg(v)

    rs = add("resume", "continue an interrupted search, keeping finished trials")
    rs.add_argument("results_dir", help="a results folder or its URI (s3://...)")
    ray_args(rs)

    e = add("export", "write the best config again (best_config.yaml or .json)")
    e.add_argument("results_dir")
    e.add_argument(
        "--format",
        choices=("yaml", "json", "onnx", "torchscript"),
        default="yaml",
        help="yaml/json: the best config; onnx/torchscript: the model with its preprocessing, "
        "checked against PyTorch, with a model card",
    )

    rp = add("report", "write an HTML report with plots of a finished search (RESULTS_DIR/report/)")
    rp.add_argument("results_dir")
    rp.add_argument("--top", type=int, default=10, help="trials in the top-trials table")

    ls = add("list", "list the experiments in a results folder (and one level below)")
    ls.add_argument("results_root", nargs="?", default="results")

    sh = add("show", "print one experiment's outcome, top trials and best config")
    sh.add_argument("results_dir")
    sh.add_argument("--top", type=int, default=5, help="trials to show")
    return p


def load(path: Path, args: argparse.Namespace) -> tuple[SearchSpec, dict[str, Any]]:
    """A spec file, or an example spec by name (`quick`, `default`, `fast`), with the flags."""
    path = Path(resolve_example(str(path), "tuner"))
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        got = "an empty file" if raw is None else type(raw).__name__
        raise ConfigError(f"{path} must be a mapping of keys to values, got {got}")
    # The file as written first: merging an option into a section that is not a mapping (e.g.
    # `base: 5` with --data-root) would replace it and hide the mistake.
    validate_spec(raw, str(path))
    raw = _with_flags(raw, args)
    return validate_spec(raw, str(path)), raw


def _with_flags(raw: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The command line's spec overrides, the same for a file and for a plan: --set, then
    --data-root, --storage-path and --cpu."""
    if getattr(args, "overrides", None):
        raw = deep_merge(raw, parse_overrides(args.overrides))
    if getattr(args, "data_root", None):
        raw = deep_merge(raw, {"base": {"dataset": {"root": args.data_root}}})
    if getattr(args, "storage_path", None):
        raw = deep_merge(raw, {"storage_path": args.storage_path})
    if getattr(args, "cpu", False):
        no_gpu = {"resources": {"gpu": 0}, "retrain": {"gpu": 0}, "base": {"device": "cpu"}}
        raw = deep_merge(raw, no_gpu)
    return raw


def _planned(args: argparse.Namespace) -> tuple[SearchSpec, dict[str, Any]]:
    """`run` without a spec: the folder and the budget planned as `init` would."""
    from trainable.config.reading import parse_duration
    from tuner.planning.auto import plan_folder

    if not args.data_root or not args.time_budget:
        raise ConfigError(
            "run needs a search-space file, or --data-root DIR and --time-budget (e.g. 10m) "
            "to plan one"
        )
    t0 = time.monotonic()
    planned = plan_folder(Path(args.data_root), parse_duration(args.time_budget), args.name)
    raw = _with_flags(planned.spec(), args)
    # The run's clock starts after planning: what planning took comes off its budget.
    raw["budget"]["total_s"] = round(raw["budget"]["total_s"] - (time.monotonic() - t0), 1)
    return validate_spec(raw, f"the plan for {args.data_root}"), raw


def _init(args: argparse.Namespace) -> int:
    from trainable.config.reading import parse_duration
    from tuner.planning.auto import plan_folder
    from tuner.planning.plan import name_for

    budget_s = parse_duration(args.time_budget)
    out = args.out or Path(f"{args.name or name_for(args.data_root)}.yaml")
    if out.exists():  # checked before the folder is read and the speed measured
        raise ConfigError(f"{out} already exists; pass another --out, or remove it first")
    planned = plan_folder(args.data_root, budget_s, args.name)
    validate_spec(planned.spec(), str(out))  # what run would refuse is never written
    text = planned.yaml(str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    from trainable.files import atomic

    atomic.write_text(out, text)
    print(f"wrote {out}; run it with: python -m tuner run {out}")
    return 0


def _ray_options(args: argparse.Namespace) -> Any:
    from tuner.integrations.cluster import RayOptions

    return RayOptions(
        address=args.address,
        num_cpus=args.num_cpus,
        dashboard=args.dashboard,
        dashboard_host=args.dashboard_host,
    )


def _afterwards(args: argparse.Namespace) -> int:
    """export, report, list and show: read a results folder (from its bucket first, when it
    is one), start nothing; what export and report write goes back to the bucket."""
    from tuner.results import bucket, catalog

    if getattr(args, "top", 1) < 1:
        raise ConfigError(f"--top must be at least 1, got {args.top}")
    if args.command == "list":
        root = args.results_root
        print(catalog.list_text(bucket.find(root) if is_uri(root) else Path(root)))
        return 0
    results = bucket.fetch(bucket.results_at(args.results_dir))  # a bucket's, refreshed
    if args.command == "export" and args.format in ("onnx", "torchscript"):
        from tuner.stages.deploy import deploy
        from tuner.stages.retrain import load_best_config

        load_best_config(results)  # one line when the search has not finished
        deploy(results, (args.format,))
        path = results.model(args.format)
        written = [str(p.relative_to(results.path)) for p in (path, *results.model_card())]
    elif args.command == "export":
        from tuner.stages.retrain import export_config, load_best_config

        path = export_config(load_best_config(results), results, args.format)
        written = [str(p.relative_to(results.path)) for p in (results.best_trainer_config, path)]
    elif args.command == "report":
        from tuner.reporting.report import build

        path = build(results.path, top=args.top)
        written = [results.report.name]
    else:
        print(catalog.show_text(results, top=args.top))
        return 0
    bucket.publish(results, *written)
    print(
        f"wrote {results.where}/{path.relative_to(results.path)}"
        if results.remote
        else f"wrote {path}"
    )
    return 0


def _interrupted(err: KeyboardInterrupt, results: ResultsDir | None) -> int:
    """Ctrl-C (130) or SIGTERM (143) outside Tune's own state save: every stage resumes from
    its files. `stopping.Stopped` carries the signal's reason and exit code."""
    reason = getattr(err, "reason", None) or "stopped by SIGINT"
    code = int(getattr(err, "exit_code", ExitCode.INTERRUPTED))
    if results is not None and results.path.exists():
        how = f"continue with: python -m tuner resume {results.where}"
    else:  # stopped before the results folder was made: nothing to resume
        how = "nothing was written yet: run the same command again"
    print(f"\ninterrupted ({reason}); {how}", file=sys.stderr)
    return code


# keyed by tuner.results.comparison.Retrained's values (a StrEnum: its members look these up)
_RETRAINED = {"winner": "best config", "base": "base config (the search found nothing better)"}


def _print_outcome(outcome: Outcome, results: ResultsDir) -> None:
    where = results.where
    best = f"{where}/{results.best_config().name}" if results.remote else results.best_config()
    notes = [outcome.versus_base.line()] if outcome.versus_base else []
    for seed, scale in outcome.lr_retried_seeds.items():
        notes.append(f"retraining seed {seed} diverged and was trained again at {scale:g}x the lr")
    o = outcome
    print(
        f"\n{o.summary}\n"
        + "".join(f"{note}\n" for note in notes)
        + f"retrained {_RETRAINED[o.retrained]}: test accuracy "
        f"{o.test_accuracy_mean:.2%} ± {o.test_accuracy_std:.2%}"
        + (
            f", balanced accuracy {o.test_balanced_accuracy_mean:.2%}, macro-F1 "
            f"{o.test_macro_f1_mean:.4f}"
            if o.test_balanced_accuracy_mean is not None and o.test_macro_f1_mean is not None
            else ""
        )
        + "\n"
        f"results: {where}  (report: python -m tuner report {where})\n"
        f"production training: python -m trainable train --config {best}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    t_start = time.monotonic()
    args = _parser().parse_args(argv)
    results: ResultsDir | None = None
    try:
        if args.command == "validate":
            spec, _ = load(args.spec, args)
            print(
                f"{resolve_example(str(args.spec), 'tuner')}: ok ({len(spec.space)} searched keys, {spec.num_samples} trials, "
                f"max_t {spec.scheduler.max_t} epochs, {spec.resources.gpu:g} GPU per trial)"
            )
            return 0
        if args.command in ("export", "report", "list", "show"):
            return _afterwards(args)
        if args.command == "init":
            return _init(args)
        from tuner.results import bucket
        from tuner.stages import experiment

        budget_s = None  # the whole run's, for the closing wall-time line
        if args.command == "run":
            spec, raw = load(args.spec, args) if args.spec else _planned(args)
            budget_s = spec.budget.total_s if spec.budget else None
            if not args.spec:  # planned: the budget given, planning included
                from trainable.config.reading import parse_duration

                budget_s = parse_duration(args.time_budget)
            results = experiment.results_dir_for(spec)
            outcome = experiment.run(spec, raw, _ray_options(args))
        else:
            results = bucket.results_at(args.results_dir)
            outcome = experiment.resume(results, _ray_options(args))
        _print_outcome(outcome, results)
        if budget_s:
            wall = time.monotonic() - t_start
            print(
                f"wall time {wall:.0f} s for a budget of {budget_s:.0f} s ({wall / budget_s:.0%})"
            )
        return 0
    except KeyboardInterrupt as err:  # a second signal, or one outside the search stage
        return _interrupted(err, results)
    except UserError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
