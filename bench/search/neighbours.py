"""What the searched space holds next to the base config, trained in full (issue #25).

The run's search replaced its base config in 2 of 17 ten-minute runs, and never with a gain
the test split could confirm. This asks the question the search cannot answer on its
validation subset: is there anything better one step away? Each searched key is moved one
step from the base config (a number twice and half its value on a log scale, a quarter of
its range either way on a linear one, each other value of a choice; clipped to the range),
one key at a time, and every config, the base first, gets the same final training: all
training images, the same epochs, `python -m trainable train --test` in a plain process as
`bench.search.own_data`'s default arm. The spec is the product's own: `tuner init DIR
--time-budget B`.

    python -m bench.search.neighbours --data-root DIR [--time-budget 10m] [--epochs N]
        [--keys KEY ...] [--json PATH] [--keep DIR]

The gain of each neighbour is set against one standard error of a difference of two
accuracies on the test split (`tuner.results.comparison.noise_margin`), as in
`bench.search.gain_summary`. Writes bench/results/neighbours.json (`--json`).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from bench.support.env import environment, write_json
from tuner.results.comparison import noise_margin
from tuner.spec import Param, SearchSpec, validate_spec


def steps(param: Param, value: Any) -> list[Any]:
    """`value`'s neighbours in `param`'s range: one step each way (see the module's text)."""
    if param.type == "choice":
        return [v for v in param.values or [] if v != value]
    assert param.low is not None and param.high is not None
    if param.type == "loguniform" or param.log:
        moved = [value / 2, value * 2]
    else:
        quarter = (param.high - param.low) / 4
        moved = [value - quarter, value + quarter]
    clipped = [min(max(v, param.low), param.high) for v in moved]
    if param.type == "int":
        clipped = [round(v) for v in clipped]
    return [v for v in dict.fromkeys(clipped) if not math.isclose(v, value)]


def neighbours(
    spec: SearchSpec, keys: Sequence[str] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """(label, searched values) for the base config and each one-key step from it, for the
    searched `keys` (default: all of them)."""
    base, why = spec.base_point()
    if base is None:
        raise SystemExit(f"the base config is not a point of the space: {why}")
    unknown = sorted(set(keys or ()) - set(spec.space))
    if unknown:
        raise SystemExit(
            f"not searched keys: {', '.join(unknown)}; the space has {list(spec.space)}"
        )
    rows = [("base", dict(base))]
    for key, param in spec.space.items():
        if keys and key not in keys:
            continue
        for value in steps(param, base[key]):
            shown = str(value) if isinstance(value, bool) else f"{value:g}"
            rows.append((f"{key}={shown}", base | {key: value}))
    return rows


def train_one(config: dict[str, Any], out: Path) -> dict[str, Any]:
    """One plain `python -m trainable train --test` of `config`; its test figures."""
    config_file = out.with_suffix(".yaml")
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [sys.executable, "-m", "trainable", "train", "--config", str(config_file)]
    t0 = time.monotonic()
    done = subprocess.run([*cmd, "--out", str(out), "--test"], capture_output=True, text=True)
    wall = time.monotonic() - t0
    if done.returncode != 0:
        return {"ok": False, "wall_s": wall, "error": done.stderr.strip().splitlines()[-1:]}
    metrics = json.loads((out / "test_metrics" / "metrics.json").read_text())
    return {
        "ok": True,
        "wall_s": wall,
        "test_accuracy": metrics["accuracy"],
        "test_balanced_accuracy": metrics.get("balanced_accuracy"),
        "test_images": metrics["num_images"],
    }


def plan_spec(folder: Path, budget: str, work: Path) -> dict[str, Any]:
    """The product's plan for `folder` on this machine: `tuner init`."""
    spec_file = work / "spec.yaml"
    cmd = [sys.executable, "-m", "tuner", "init", str(folder), "--time-budget", budget]
    subprocess.run([*cmd, "--out", str(spec_file)], check=True)
    raw: dict[str, Any] = yaml.safe_load(spec_file.read_text())
    return raw


def table(rows: list[dict[str, Any]]) -> str:
    base = rows[0]
    lines = [
        "| config | test acc | balanced | gain (points) | 1 SE of a gain | wall s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if not r["ok"]:
            lines.append(f"| {r['label']} | failed: {r['error']} | | | | {r['wall_s']:.0f} |")
            continue
        gain = 100 * (r["test_accuracy"] - base["test_accuracy"])
        se = 100 * noise_margin("val_acc", base["test_accuracy"], r["test_images"])
        lines.append(
            f"| {r['label']} | {100 * r['test_accuracy']:.2f}% | "
            f"{100 * (r['test_balanced_accuracy'] or math.nan):.2f}% | {gain:+.2f} | {se:.2f} | "
            f"{r['wall_s']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.search.neighbours", description=__doc__)
    p.add_argument("--data-root", type=Path, required=True, help="an image folder")
    p.add_argument("--time-budget", default="10m", help="the budget `tuner init` plans for")
    p.add_argument("--epochs", type=int, help="the final training's (default: the plan's)")
    p.add_argument("--keys", nargs="+", help="the searched keys to step (default: all)")
    p.add_argument("--json", type=Path)
    p.add_argument("--keep", type=Path, help="keep the runs here (default: a temp folder)")
    args = p.parse_args(argv)
    env = environment()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-neighbours-"))
    work.mkdir(parents=True, exist_ok=True)
    spec = validate_spec(plan_spec(args.data_root, args.time_budget, work))
    epochs = args.epochs or spec.retrain.epochs
    rows = []
    for i, (label, params) in enumerate(neighbours(spec, args.keys)):
        config = spec.retrain_config(params, epochs).to_dict()
        rows.append({"label": label, "params": params} | train_one(config, work / f"c{i}"))
        r = rows[-1]
        print(f"{label}: {r.get('test_accuracy', 'failed')} in {r['wall_s']:.0f} s", flush=True)
    print(table(rows))
    payload = {
        "folder": str(args.data_root),
        "time_budget": args.time_budget,
        "epochs": epochs,
        "width": spec.base_config().model.width,
        "rows": rows,
        "environment": env,
    }
    print(f"wrote {write_json('neighbours', payload, args.json)}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
