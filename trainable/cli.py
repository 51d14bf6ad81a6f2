"""`python -m trainable train|evaluate|export|predict`: the production-training command line."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainable.command import prog, resolve_example, version
from trainable.errors import ConfigError, UserError
from trainable.files.run_dir import RunDir

if TYPE_CHECKING:
    from trainable.config import TrainConfig

# Nothing heavy at import: `predict` serves an exported model with ONNX Runtime alone, so the
# training stack (torch, pydantic models) is imported by the commands that train.

TRAIN_EXAMPLES = """examples:
  python -m trainable train --config configs/cifar10_smallnet.yaml --data-root ../shared/datasets/cifar10-jpeg
  python -m trainable train --config best_config.yaml --set optimizer.lr=0.003 --set epochs=30 --test
  python -m trainable train --config s3://bucket/searches/NAME/best_config.yaml --out results/prod
  python -m trainable train --out results/run1 --resume          # continue an interrupted run
"""
PREDICT_EXAMPLES = """examples:
  python -m trainable predict --model results/cifar10-quick/model.onnx photos/ --out predictions.csv
  python -m trainable predict --model model.onnx cat.jpg dog.png --top-k 5
"""
EXPORT_EXAMPLES = """examples:
  python -m trainable export results/run1                        # model.onnx + model_card.md there
  python -m trainable export results/run1 --format onnx torchscript
"""
EVAL_EXAMPLES = """examples:
  python -m trainable evaluate --checkpoint results/run1/best/checkpoint.pt --split test
  python -m trainable evaluate --checkpoint results/run1/best --split val --data-root /data/cifar10
"""


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog=prog("trainable"), description=__doc__, formatter_class=fmt)
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    p.add_argument("--version", action="version", version=version())
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser(
        "train", help="train a model from a YAML config", epilog=TRAIN_EXAMPLES, formatter_class=fmt
    )
    t.add_argument(
        "--config",
        help="YAML config (keys as in configs/*.yaml), a file, an object-store URI such as "
        "s3://bucket/searches/NAME/best_config.yaml, or an example's name (cifar10_fastnet, "
        "cifar10_smallnet, ...); defaults if omitted",
    )
    t.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key, e.g. optimizer.lr=0.003 (repeatable)",
    )
    t.add_argument("--data-root", help="where the dataset lives (overrides dataset.root)")
    t.add_argument("--out", type=Path, help="output folder (default: results/train-<timestamp>)")
    t.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    t.add_argument(
        "--test",
        action="store_true",
        help="after training, evaluate the best checkpoint once on the test split",
    )
    t.add_argument(
        "--time-budget",
        metavar="DURATION",
        help="train for this long (e.g. 600, 10m, 1.5h): after each epoch the run re-plans "
        "its epochs (more or fewer than the config's) to what fits at its measured pace, its "
        "schedule stretched or squeezed to match (triangular schedule only); --test comes after",
    )
    t.add_argument(
        "--checkpoint-every",
        metavar="SECONDS",
        help="write the resume point at most this often, and at the end (default "
        "30; 0: every epoch); an interrupted run loses at most this much training",
    )
    t.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors"
    )

    e = sub.add_parser(
        "evaluate",
        help="evaluate a checkpoint on a split",
        epilog=EVAL_EXAMPLES,
        formatter_class=fmt,
    )
    e.add_argument(
        "--checkpoint", type=Path, required=True, help="checkpoint.pt (or the folder holding it)"
    )
    e.add_argument("--split", choices=("test", "val", "train"), default="test")
    e.add_argument(
        "--data-root", help="where the dataset lives (overrides the checkpoint's dataset.root)"
    )
    e.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key of the checkpoint, e.g. device=cpu (repeatable)",
    )
    e.add_argument(
        "--out", type=Path, help="metrics folder (default: <checkpoint folder>/../eval-<split>)"
    )
    e.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors"
    )
    x = sub.add_parser(
        "export",
        help="a training run's best checkpoint as a deployable model with its model card",
        epilog=EXPORT_EXAMPLES,
        formatter_class=fmt,
    )
    x.add_argument("run", type=Path, help="the run's folder (train --out)")
    x.add_argument(
        "--format",
        dest="formats",
        nargs="+",
        choices=("onnx", "torchscript"),
        default=["onnx"],
        help="one or both (default onnx); written into the run's folder",
    )
    x.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors"
    )
    pr = sub.add_parser(
        "predict",
        help="classify images with an exported model (ONNX Runtime only; no torch needed)",
        epilog=PREDICT_EXAMPLES,
        formatter_class=fmt,
    )
    pr.add_argument(
        "--model", type=Path, required=True, help="model.onnx (its model_card.json beside it)"
    )
    pr.add_argument(
        "images", type=Path, nargs="+", help="image files or folders (searched recursively)"
    )
    pr.add_argument("--out", type=Path, help="CSV to write (default: standard output)")
    pr.add_argument("--top-k", type=int, default=3, help="classes per image in the CSV (default 3)")
    pr.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors"
    )
    return p


def cmd_predict(args: argparse.Namespace) -> int:
    from trainable.export.predict import predict

    if not args.model.is_file():
        raise UserError(
            f"model not found: {args.model} (export one: python -m tuner export RESULTS --format onnx)"
        )
    if not (args.model.parent / "model_card.json").is_file():
        raise UserError(
            f"no model_card.json beside {args.model}: export the model with python -m tuner export"
        )
    if args.top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {args.top_k}")
    return predict(args.model, args.images, args.out, args.top_k)


def _config(raw: Any, overrides: Sequence[str], data_root: str | None) -> TrainConfig:
    from trainable.config import build_config, deep_merge

    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"config must be a mapping of keys to values, got {type(raw).__name__}")
    if data_root is not None:
        raw = deep_merge(raw or {}, {"dataset": {"root": data_root}})
    return build_config(raw, overrides)


def cmd_export(args: argparse.Namespace) -> int:
    from trainable.export.bundle import export_run

    run = RunDir(args.run)
    export_run(run, tuple(args.formats))
    names = ", ".join(str(run.model(f)) for f in args.formats)
    print(f"exported {names}; model card {run.model_card()[0]}")
    return 0


def _checkpoint_every(given: str | None) -> float:
    """`--checkpoint-every`, checked here (one line, exit 2) and defaulted here: the parser
    must not import torch."""
    from trainable.files.checkpoint import DEFAULT_INTERVAL_S

    if given is None:
        return DEFAULT_INTERVAL_S
    try:
        value = float(given)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"--checkpoint-every {given!r}: expected seconds >= 0, e.g. 30 or 0")
    return value


def cmd_train(args: argparse.Namespace) -> int:
    from trainable.config import read_yaml
    from trainable.config.reading import parse_duration
    from trainable.tracking import production_run

    started = time.time()  # a --time-budget counts from the command's start
    out: Path = args.out or Path("results") / time.strftime("train-%Y%m%d-%H%M%S")
    resume_from = None
    if args.resume:
        resume_from = RunDir(out).last_checkpoint
        if args.out is None or not resume_from.is_file():
            raise UserError(
                f"nothing to resume: no {resume_from}; pass --out with the folder of an earlier run"
            )
        raw = read_yaml(args.config or RunDir(out).config)
    else:
        if out.exists() and any(out.iterdir()):
            raise UserError(
                f"output folder {out} already exists and is not empty; pass --resume or another --out"
            )
        raw = (
            read_yaml(_config_source(resolve_example(args.config, "trainable")))
            if args.config
            else None
        )
    config = _config(raw, args.overrides, args.data_root)
    every_s = _checkpoint_every(args.checkpoint_every)
    end_at = None
    if args.time_budget is not None:
        end_at = started + parse_duration(args.time_budget, "--time-budget")
    print(f"training {config.model.name} on {config.dataset.name} -> {out}", flush=True)
    try:
        with production_run(config.to_dict(), out) as tracked:
            return _train_and_test(config, out, resume_from, args.test, every_s, tracked, end_at)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted; continue with: python -m trainable train --out {out} --resume",
            file=sys.stderr,
        )
        return 130


def _config_source(config: str) -> str | Path:
    """A registered model version's config (`models:/NAME/VERSION`), or the file or URI."""
    from trainable.tracking import REGISTRY_SCHEME, config_from_registry

    if config.startswith(REGISTRY_SCHEME):
        return config_from_registry(config)
    return config


def _train_and_test(
    config: TrainConfig,
    out: Path,
    resume_from: Path | None,
    test: bool,
    every_s: float,
    tracked: Any,
    end_at: float | None = None,
) -> int:
    from trainable.files import atomic
    from trainable.files.checkpoint import SavePolicy
    from trainable.training.engine import progress_printer, train
    from trainable.training.evaluation import evaluate
    from trainable.training.horizon import Deadline
    from trainable.vocab import Status

    report = progress_printer(config.epochs)
    result = train(
        config,
        out,
        resume_from=resume_from,
        report=tracked.wrap(report) if tracked else report,
        save_policy=SavePolicy(interval_s=every_s),
        deadline=Deadline(end_at) if end_at is not None else None,
    )
    summary: dict[str, Any] = {
        "status": result.status,
        "reason": result.reason,
        "epochs_run": result.epochs_run,
        "epochs_planned": result.epochs_planned,
        "best_epoch": result.best_epoch,
        "monitor": result.monitor,
        "best_metric": result.best_metric,
        "val_accuracy": result.val_metrics["accuracy"] if result.val_metrics else None,
        "history": result.history,
    }
    if test and result.best_checkpoint.exists():
        from trainable.data.datasets import load_splits
        from trainable.files import checkpoint

        state = checkpoint.load(result.best_checkpoint)
        scores = evaluate(
            state, config, load_splits(config.dataset).test, RunDir(out).test_metrics, "test split"
        )
        summary["test_accuracy"] = scores["accuracy"]
        if tracked:
            tracked.log_test(scores)
        print(
            f"test accuracy {scores['accuracy']:.2%} ({scores['num_images']} images) -> {RunDir(out).test_metrics}"
        )
    atomic.write_text(RunDir(out).result, json.dumps(summary, indent=2))
    best = (
        f"best {result.monitor} {result.best_metric:.4f} at epoch {result.best_epoch}"
        if not math.isnan(result.best_metric)
        else f"no validation split: the final epoch's weights ({result.best_epoch})"
    )
    print(f"{result.status}: {result.reason}; {best}; checkpoint {result.best_checkpoint}")
    return 0 if result.status != Status.DIVERGED else 1


def cmd_evaluate(args: argparse.Namespace) -> int:
    from trainable.data.datasets import load_splits
    from trainable.files import checkpoint
    from trainable.training.evaluation import evaluate

    state = checkpoint.load(args.checkpoint)
    config = _config(state["config"], args.overrides, args.data_root)
    splits = load_splits(config.dataset)
    if list(splits.classes) != list(state["classes"]):
        raise UserError(
            f"the data's classes {list(splits.classes)} differ from the checkpoint's {state['classes']}"
        )
    ckpt_dir = args.checkpoint if args.checkpoint.is_dir() else args.checkpoint.parent
    out = args.out or ckpt_dir.parent / f"eval-{args.split}"
    summary = evaluate(state, config, getattr(splits, args.split), out, f"{args.split} split")
    print(
        f"{args.split} accuracy {summary['accuracy']:.2%} on {summary['num_images']} images "
        f"(macro F1 {summary['macro_f1']:.4f}) -> {out}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        commands = {
            "train": cmd_train,
            "evaluate": cmd_evaluate,
            "export": cmd_export,
            "predict": cmd_predict,
        }
        return int(commands[args.command](args))
    except UserError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
