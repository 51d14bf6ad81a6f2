"""Writing a serving model as ONNX (for ONNX Runtime and anything that reads ONNX) or as
TorchScript (for libtorch and `torch.jit.load`), each atomically, with a dynamic batch size
(ONNX: height and width too)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from trainable.export.serving import Serving
from trainable.files import atomic

FORMATS = ("onnx", "torchscript")
OPSET = 17


def example(model: Serving, batch: int = 2) -> torch.Tensor:
    return torch.zeros(batch, model.size, model.size, 3, dtype=torch.uint8)


def write(model: Serving, fmt: str, path: Path) -> Path:
    # torch 2.14 marks both as deprecated (the TorchScript-based ONNX exporter in favour of
    # torch.export's, which needs onnxscript and did not take this graph's dynamic image size
    # here; torch.jit in favour of torch.export, which libtorch users cannot load yet). Both
    # still work and are tested (tests/trainable/export); the notices would only alarm a user.
    with (
        atomic.atomic_path(path) as tmp,
        torch.no_grad(),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        if fmt == "onnx":
            torch.onnx.export(
                model,
                (example(model),),
                str(tmp),
                dynamo=False,  # the TorchScript-based exporter: no onnxscript needed
                input_names=["images"],
                output_names=["probabilities"],
                dynamic_axes={
                    "images": {0: "batch", 1: "height", 2: "width"},
                    "probabilities": {0: "batch"},
                },
                opset_version=OPSET,
            )
        else:
            traced = torch.jit.trace(model, (example(model),))
            torch.jit.save(traced, str(tmp))
    return path
