"""search_spaces/fast.yaml: valid, on the fast path, and its base trains on the CPU path."""

from __future__ import annotations

import itertools
from pathlib import Path

import torch

from tests.conftest import run_cli
from trainable.config import build_config, deep_merge, read_yaml
from trainable.model.registry import build_model
from trainable.training.engine import train
from tuner.spec import load_spec

REPO = Path(__file__).resolve().parents[2]
FAST = REPO / "search_spaces" / "fast.yaml"


def test_fast_space_validates_and_takes_the_fast_path() -> None:
    spec = load_spec(FAST)
    base = spec.base_config()
    assert base.model.name == "fastnet"
    assert base.loader.kind == "device" and base.channels_last and base.tta_hflip
    assert base.precision in ("auto", "bf16") and base.device == "cuda"
    assert 0 < spec.resources.gpu < 1  # trials packed on one GPU
    assert spec.max_concurrent_trials == round(1 / spec.resources.gpu)
    decoupled = {"optimizer.sgd.lr_per_1024", "optimizer.sgd.weight_decay_per_1024"}
    assert decoupled | {"optimizer.sgd.momentum", "model.width"} <= set(spec.space)


def test_fast_space_base_is_the_fastnet_recipe() -> None:
    """The search starts from configs/cifar10_fastnet.yaml's recipe, not a drifted copy."""
    base = load_spec(FAST).base_config().to_dict()
    recipe = build_config(read_yaml(REPO / "configs" / "cifar10_fastnet.yaml")).to_dict()
    assert base["optimizer"]["name"] == "sgd"
    for key in ("model", "optimizer", "schedule", "lookahead", "augment", "batch_size"):
        assert base[key] == recipe[key], key
    for key in ("label_smoothing", "tta_hflip", "tta_translate"):
        assert base[key] == recipe[key], key


def test_cli_validate_accepts_fast_space() -> None:
    out = run_cli("tuner", "validate", FAST)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout


def test_every_searched_model_size_builds() -> None:
    spec = load_spec(FAST)
    widths = spec.space["model.width"].corners()
    depths = spec.space["model.depth"].corners()
    for width, depth in itertools.product(widths, depths):
        net = build_model("fastnet", 10, width, depth, 0.0).eval()
        with torch.no_grad():
            assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_fast_base_trains_an_epoch_on_the_cpu(tmp_path: Path) -> None:
    # The GPU-only keys swapped for their CPU path; everything else (TTA, device loader,
    # channels_last, the preset) is the search's own base.
    base = load_spec(FAST).base_config().to_dict()
    cfg = build_config(
        deep_merge(
            base,
            {
                "dataset": {
                    "name": "synthetic",
                    "num_classes": 4,
                    "synthetic_train_size": 512,
                    "synthetic_test_size": 128,
                },
                "model": {"width": 8},
                "device": "cpu",
                "precision": "fp32",
                "batch_size": 128,
                "epochs": 1,
            },
        )
    )
    result = train(cfg, tmp_path, report=lambda *_: None)
    assert result.status == "completed" and result.epochs_run == 1
    assert 0.0 <= result.history[0]["val_acc"] <= 1.0
