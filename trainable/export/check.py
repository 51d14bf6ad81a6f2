"""Checking an exported model against the PyTorch one: top-1 agreement and the largest
probability difference on a whole split (`parity`), and per-image latency at batch 1 and 64
on this machine (`latency`), ONNX Runtime and PyTorch, with the threads each used."""

from __future__ import annotations

import functools
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainable.export.serving import Serving

BATCH = 256


def _batches(images: Any, batch: int = BATCH) -> Iterator[np.ndarray]:
    for start in range(0, len(images), batch):
        yield np.ascontiguousarray(np.asarray(images[start : start + batch]))


def ort_session(path: Path, threads: int | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def parity(
    model: Serving, images: Any, labels: np.ndarray, exported: dict[str, Path]
) -> dict[str, Any]:
    """Each exported format against PyTorch eager on `images` (uint8 NHWC), and each one's
    single-view accuracy against `labels`."""
    runners: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    if "onnx" in exported:
        session = ort_session(exported["onnx"])
        runners["onnx"] = lambda x: session.run(None, {"images": x})[0]
    if "torchscript" in exported:
        with warnings.catch_warnings():  # deprecated in torch 2.14, still works (formats.py)
            warnings.simplefilter("ignore", FutureWarning)
            scripted = torch.jit.load(str(exported["torchscript"]))
        runners["torchscript"] = lambda x: scripted(torch.from_numpy(x)).numpy()
    agree = dict.fromkeys(runners, 0)
    right = dict.fromkeys(["pytorch", *runners], 0)
    worst = dict.fromkeys(runners, 0.0)
    with torch.no_grad():
        for start, x in zip(range(0, len(images), BATCH), _batches(images), strict=True):
            y = labels[start : start + len(x)]
            reference = model(torch.from_numpy(x)).numpy()
            top1 = reference.argmax(1)
            right["pytorch"] += int((top1 == y).sum())
            for name, run in runners.items():
                probs = run(x)
                agree[name] += int((probs.argmax(1) == top1).sum())
                right[name] += int((probs.argmax(1) == y).sum())
                worst[name] = max(worst[name], float(np.abs(probs - reference).max()))
    n = len(images)
    out: dict[str, Any] = {"images": n, "accuracy": {k: v / n for k, v in right.items()}}
    out |= {
        name: {"top1_agreement": agree[name] / n, "max_prob_diff": worst[name]} for name in runners
    }
    return out


def latency(model: Serving, onnx_path: Path, repeats: int = 20) -> dict[str, Any]:
    """Milliseconds per image, median of `repeats` timed calls after a warm-up, at batch 1
    and 64, for ONNX Runtime and PyTorch eager on this machine's CPU."""
    threads = torch.get_num_threads()
    session = ort_session(onnx_path, threads)
    out: dict[str, Any] = {"threads": threads, "ms_per_image": {}}
    for batch in (1, 64):
        x = np.zeros((batch, model.size, model.size, 3), np.uint8)
        calls: dict[str, Callable[[], Any]] = {
            "onnxruntime": functools.partial(session.run, None, {"images": x}),
            "pytorch": functools.partial(model, torch.from_numpy(x)),
        }
        with torch.no_grad():
            for name, call in calls.items():
                per_image = _median_s(call, repeats) / batch * 1000
                out["ms_per_image"][f"{name}/batch{batch}"] = per_image
    return out


def _median_s(call: Callable[[], Any], repeats: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
