"""bench/trainer/serving.py: reads the card's parity and latency, times `predict` and PyTorch
eager over the same images, and writes both with their ratio (not timings: consistency)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.trainer import serving
from tests.trainable.export.test_export import BACKBONES, state_for
from trainable.export.check import latency, parity
from trainable.export.formats import write
from trainable.export.serving import serving_model
from trainable.files import checkpoint
from tuner.results.layout import ResultsDir


def test_serving_bench_on_an_exported_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = ResultsDir(tmp_path / "run")
    state = state_for(BACKBONES[0], 16, classes=3)
    full = state | {"format_version": checkpoint.FORMAT_VERSION, "epoch": 1}
    checkpoint.save_atomic(full, results.best_checkpoint)
    model, _ = serving_model(state)
    write(model, "onnx", results.model("onnx"))
    images = tmp_path / "images"
    images.mkdir()
    for k in range(5):
        Image.new("RGB", (16, 16), (40 * k, 20, 200)).save(images / f"{k}.png")
    x = np.zeros((4, 16, 16, 3), np.uint8)
    card = {
        "name": "tiny",
        "classes": ["a", "b", "c"],
        "input": {"image_size": 16},
        "parity": parity(model, x, np.zeros(4, int), {"onnx": results.model("onnx")}),
        "latency": latency(model, results.model("onnx"), repeats=2),
    }
    results.model_card()[1].write_text(json.dumps(card))
    out = tmp_path / "serving.json"
    assert serving.main([str(results.path), "--images", str(images), "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["predict_images_per_s"] > 0 and r["eager_images_per_s"] > 0
    assert r["ratio"] == pytest.approx(r["predict_images_per_s"] / r["eager_images_per_s"])
    assert r["card_parity"]["onnx"]["top1_agreement"] == 1.0
    assert "| ONNX top-1 agreement (4 test images) | 100.0000% |" in capsys.readouterr().out
