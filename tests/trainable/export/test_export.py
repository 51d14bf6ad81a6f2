"""Exported models against PyTorch: every backbone, two image sizes, colour and grayscale
input; and `predict` in a process where importing torch or ray fails."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.conftest import REPO
from trainable.config import build_config
from trainable.export.check import latency, parity
from trainable.export.formats import write
from trainable.export.serving import serving_model
from trainable.model.network import build_network, init_from_data

MEAN, STD = [0.45, 0.5, 0.55], [0.2, 0.25, 0.3]


def state_for(model: dict[str, Any], size: int, classes: int = 5) -> dict[str, Any]:
    """A checkpoint-shaped state of a network with non-trivial weights and BN statistics."""
    torch.manual_seed(0)
    config = build_config({"dataset": {"name": "synthetic", "image_size": size}, "model": model})
    net = build_network(config.model, classes)
    images = np.random.default_rng(0).integers(0, 256, (64, size, size, 3), dtype=np.uint8)
    init_from_data(net, config.model, images, MEAN, STD)
    net.train()
    with torch.no_grad():  # BatchNorm running statistics away from their initial 0 and 1
        x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
        net(x)
    names = [f"class-{i}" for i in range(classes)]
    return {
        "model": net.state_dict(),
        "classes": names,
        "norm": {"mean": MEAN, "std": STD},
        "config": config.to_dict(),
    }


BACKBONES = [
    {"name": "smallnet", "width": 8, "depth": 2},
    {"name": "resnet9", "width": 8},
    {"name": "resnet18", "width": 8},
    {"name": "fastnet", "width": 8, "depth": 2, "stem": "whiten", "whiten": {"images": 64}},
]


@pytest.mark.parametrize("size", [16, 28])
@pytest.mark.parametrize("backbone", BACKBONES, ids=lambda b: b["name"])
def test_every_backbone_exports_with_parity(
    backbone: dict[str, Any], size: int, tmp_path: Path
) -> None:
    model, _ = serving_model(state_for(backbone, size))
    paths = {fmt: write(model, fmt, tmp_path / f"m.{fmt}") for fmt in ("onnx", "torchscript")}
    rng = np.random.default_rng(1)
    colour = rng.integers(0, 256, (40, size, size, 3), dtype=np.uint8)
    gray = np.repeat(rng.integers(0, 256, (40, size, size, 1), dtype=np.uint8), 3, axis=3)
    images, labels = np.concatenate([colour, gray]), rng.integers(0, 5, 80)
    result = parity(model, images, labels, paths)
    for fmt in paths:
        assert result[fmt]["top1_agreement"] >= 0.999, (fmt, result)
        assert result[fmt]["max_prob_diff"] < 1e-4, (fmt, result)
    assert result["images"] == 80 and 0 <= result["accuracy"]["pytorch"] <= 1


def test_the_onnx_graph_takes_any_batch_and_image_size(tmp_path: Path) -> None:
    import onnxruntime as ort

    model, _ = serving_model(state_for(BACKBONES[0], 16))
    path = write(model, "onnx", tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in ((1, 16, 16, 3), (7, 16, 16, 3), (3, 40, 24, 3)):
        (probs,) = session.run(None, {"images": np.zeros(shape, np.uint8)})
        assert probs.shape == (shape[0], 5) and np.allclose(probs.sum(1), 1, atol=1e-5)
    timing = latency(model, path, repeats=2)
    assert set(timing["ms_per_image"]) == {
        "onnxruntime/batch1",
        "pytorch/batch1",
        "onnxruntime/batch64",
        "pytorch/batch64",
    }
    assert all(v > 0 for v in timing["ms_per_image"].values()) and timing["threads"] >= 1


def test_predict_runs_without_torch_or_ray(tmp_path: Path) -> None:
    from PIL import Image

    model, _ = serving_model(state_for(BACKBONES[0], 16, classes=3))
    served = tmp_path / "served"
    write(model, "onnx", served / "model.onnx")
    card = {"classes": ["cat", "dog", "fish"], "input": {"image_size": 16}}
    (served / "model_card.json").write_text(json.dumps(card))
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    Image.new("RGB", (30, 20), (200, 10, 10)).save(images / "a.png")
    Image.new("L", (16, 16), 90).save(images / "sub" / "b.jpg")
    Image.fromarray(np.full((16, 16), 40000, np.uint16)).save(images / "c16.png")
    (images / "broken.png").write_bytes(b"not an image")
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    for name in ("torch", "ray"):
        (blocker / f"{name}.py").write_text(f"raise ImportError('{name} is not on this machine')\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{REPO}"}
    out = tmp_path / "predictions.csv"
    cmd = [sys.executable, "-m", "trainable", "predict", "--model", served / "model.onnx"]
    done = subprocess.run(
        [*map(str, cmd), str(images), "--out", str(out), "--top-k", "2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "3 images classified" in done.stderr and "images/s" in done.stderr
    assert "1 could not be decoded" in done.stderr
    rows = list(csv.DictReader(out.open()))
    assert [Path(r["path"]).name for r in rows] == ["a.png", "c16.png", "b.jpg"]
    assert list(rows[0]) == [
        "path",
        "class",
        "probability",
        "class1",
        "probability1",
        "class2",
        "probability2",
    ]
    # The same numbers as the PyTorch model on the same decoded images.
    from trainable.data.decode import decode

    x = np.stack([decode(r["path"], 16) for r in rows])
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    for row, probs in zip(rows, expected, strict=True):
        assert row["class"] == card["classes"][int(probs.argmax())]
        assert float(row["probability"]) == pytest.approx(float(probs.max()), abs=1e-5)


def test_predict_errors_are_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainable",
            "predict",
            "--model",
            str(tmp_path / "none.onnx"),
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and done.stderr.startswith("error: model not found:")
    assert done.stderr.count("\n") == 1


def test_predict_reads_the_image_types_the_trainer_reads() -> None:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    from trainable.export.predict import EXTENSIONS

    assert EXTENSIONS == IMG_EXTENSIONS
