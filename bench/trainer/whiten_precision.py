"""What running the whitening conv in float32 under autocast costs an epoch (session 18).

`trainable.model.layers.Whitening` computes its conv in float32 even under bf16/fp16
autocast: in half precision its 1/sqrt(eps)-scaled filters lost their cancellation and a
grayscale folder's default config diverged. This bench times one spec's final-training
config both ways with the run's own probe (`tuner.stages.probe.measure_epoch`), interleaved:
`float32` (the layer as shipped) and `autocast` (the conv left to autocast, as before).

    python -m bench.trainer.whiten_precision --spec results/X/search_space.yaml
        [--data-root DIR] [--rounds 3] [--json PATH]

Per arm: the median over rounds of the probe's steady epoch; the table gives each arm against
`autocast`. Writes bench/results/whiten_precision.json.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torch import nn

from bench.support.env import environment, write_json
from bench.support.specs import read_spec

ARMS = ("autocast", "float32")


@contextmanager
def whitening_in(arm: str) -> Iterator[None]:
    """The whitening conv as shipped (`float32`), or left to autocast (`autocast`)."""
    from trainable.model.layers import Whitening

    shipped = Whitening.forward
    if arm == "autocast":
        Whitening.forward = nn.Conv2d.forward  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        Whitening.forward = shipped  # type: ignore[method-assign]


def run_arms(raw: dict[str, Any], rounds: int) -> list[dict[str, Any]]:
    from trainable.data.datasets import load_splits
    from tuner.spec import validate_spec
    from tuner.stages.probe import measure_epoch

    spec = validate_spec(raw)
    config = spec.retrain_config({})
    data = load_splits(config.dataset)
    rows = []
    for r in range(rounds):
        for arm in ARMS:
            with whitening_in(arm):
                probe = measure_epoch(config.to_dict(), data, 0.0)
            if not probe:
                raise RuntimeError(f"the probe could not train this config ({arm})")
            rows.append({"round": r, "arm": arm, **probe})
            print(f"round {r} {arm:>8}: {probe['epoch_s']:.3f} s an epoch", flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    med = {a: statistics.median(r["epoch_s"] for r in rows if r["arm"] == a) for a in ARMS}
    lines = ["| whitening conv | median epoch s | against autocast |", "|---|---|---|"]
    lines += [f"| {a} | {med[a]:.3f} | {med[a] / med['autocast']:.3f}x |" for a in ARMS]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.trainer.whiten_precision", description=__doc__
    )
    p.add_argument(
        "--spec", type=Path, required=True, help="a spec whose base has a whitening stem"
    )
    p.add_argument("--data-root", help="where its images are (default: the spec's)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    raw = read_spec(args.spec, args.data_root)
    rows = run_arms(raw, args.rounds)
    print(table(rows))
    payload = {"spec": str(args.spec), "rows": rows, "environment": environment()}
    print(f"wrote {write_json('whiten_precision', payload, args.json)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
