"""Kill a whole search at many moments and resume each: does every run end complete?

    python -m bench.faults.kill_anywhere                      # bench/specs/kill_tiny.yaml, 19 moments
    python -m bench.faults.kill_anywhere SPEC --delays 2 5 9  # other spec / time-based moments

An uninterrupted run is timed first. Then each moment runs `python -m tuner run SPEC` in a
fresh folder, SIGKILLs the driver's whole process group when the moment comes (12 times spread
evenly over the uninterrupted run's wall time: Ray start, data loading, trials, retraining,
export; and 5 named points the results folder shows), then resumes (or runs again
if no folder was made) and checks the outputs: best_config.yaml, best/test_summary.json,
trials.parquet, summary.csv, manifest "finished", and every trial that had finished before the
kill unchanged. Two more moments send SIGTERM (to the driver alone, as a scheduler does) and
record the seconds until it exits. Writes a table and bench/results/kill_anywhere.json.
"""

from __future__ import annotations

import argparse
import json
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.support.env import environment, write_json
from bench.support.killing import MOMENTS, check_complete, recover, run_until

DEFAULT_SPEC = Path(__file__).resolve().parents[1] / "specs" / "kill_tiny.yaml"
SPREAD = 12  # time-based moments, evenly spread over an uninterrupted run's wall time


def baseline(spec: dict[str, Any], workdir: Path) -> float:
    """Seconds one uninterrupted run takes (checked complete): the span the kills cover."""
    spec_file = _spec_file(spec, workdir)
    t0 = time.perf_counter()
    done = recover(spec_file, workdir / spec["name"])  # no folder yet: a plain `tuner run`
    wall_s = time.perf_counter() - t0
    problems = check_complete(workdir / spec["name"], {})
    if done.returncode != 0 or problems:
        raise SystemExit(f"the uninterrupted run failed: {done.stderr[-2000:]} {problems}")
    return wall_s


def _spec_file(spec: dict[str, Any], workdir: Path) -> Path:
    spec_file = workdir / "spec.yaml"
    spec_file.write_text(yaml.safe_dump({**spec, "storage_path": str(workdir)}))
    return spec_file


def one(
    spec: dict[str, Any], moment: str, workdir: Path, sig: int = signal.SIGKILL
) -> dict[str, Any]:
    spec_file = _spec_file(spec, workdir)
    results_dir = workdir / spec["name"]
    t0 = time.perf_counter()
    stopped = run_until(spec_file, results_dir, moment, sig=sig)
    if stopped.ended_early:
        ok = None if stopped.returncode == 0 else False
        problem = f"run ended first (exit {stopped.returncode})"
        return {"moment": moment, "killed": False, "ok": ok, "problems": [problem]}
    stages = []
    manifest = results_dir / "manifest.json"
    if manifest.is_file():
        stages = sorted(json.loads(manifest.read_text()).get("stages", {}))
    done = recover(spec_file, results_dir)
    problems = [] if done.returncode == 0 else [done.stderr.strip().splitlines()[-1]]
    problems += check_complete(results_dir, stopped.finished_before) if not problems else []
    return {
        "moment": moment,
        "signal": signal.Signals(sig).name,
        "exit_code": stopped.returncode,
        "exit_s": stopped.exit_s,
        "killed": True,
        "folder_existed": stopped.folder_existed,
        "stages_done_at_kill": stages,
        "trials_finished_at_kill": len(stopped.finished_before),
        "ok": not problems,
        "problems": problems,
        "wall_s": time.perf_counter() - t0,
    }


def moments(delays: list[float]) -> list[tuple[str, signal.Signals]]:
    out = [(f"after {d:.1f}s", signal.SIGKILL) for d in delays]
    out += [(m, signal.SIGKILL) for m in MOMENTS]
    # SIGTERM as a scheduler sends it: how long the driver takes to save its state and exit.
    return out + [(m, signal.SIGTERM) for m in ("first trial finished", "retraining a seed")]


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        "\n| moment | signal | exit code | s to exit | stages done at kill | trials finished "
        "| resumed complete |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        stages = ", ".join(r.get("stages_done_at_kill", [])) or "-"
        ok = {True: "yes", False: "NO: " + "; ".join(r["problems"]), None: "-"}[r["ok"]]
        exit_s = f"{r['exit_s']:.1f}" if r.get("exit_s") is not None else "-"
        cells = [r["moment"], r.get("signal", "-"), r.get("exit_code", "-"), exit_s, stages]
        cells += [r.get("trials_finished_at_kill", "-"), ok]
        print("| " + " | ".join(str(c) for c in cells) + " |")


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("spec", type=Path, nargs="?", default=DEFAULT_SPEC)
    p.add_argument(
        "--delays",
        type=float,
        nargs="*",
        help=f"seconds after start (default: {SPREAD} spread evenly over an uninterrupted run)",
    )
    args = p.parse_args()
    spec = yaml.safe_load(args.spec.read_text())
    with tempfile.TemporaryDirectory(prefix="kill-") as tmp:
        run_s = baseline(spec, Path(tmp))
    print(f"uninterrupted run: {run_s:.1f} s", flush=True)
    delays = args.delays or [run_s * i / (SPREAD + 1) for i in range(1, SPREAD + 1)]
    rows = []
    for moment, sig in moments(delays):
        with tempfile.TemporaryDirectory(prefix="kill-") as tmp:
            rows.append(one(spec, moment, Path(tmp), sig))
        print(json.dumps(rows[-1]), flush=True)
    print_table(rows)
    stopped = [r for r in rows if r["killed"]]
    summary = {
        "moments": len(rows),
        "stopped": len(stopped),
        "resumed_complete": sum(bool(r["ok"]) for r in stopped),
    }
    print(
        f"\n{summary['resumed_complete']} of {summary['stopped']} stopped runs resumed to "
        "complete outputs"
    )
    write_json(
        "kill_anywhere",
        {
            "environment": environment(),
            "spec": str(args.spec),
            "uninterrupted_run_s": run_s,
            "summary": summary,
            "rows": rows,
        },
    )
    return 0 if summary["resumed_complete"] == summary["stopped"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
