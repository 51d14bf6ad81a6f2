"""bench/device/airbench.py: the data airbench reads, written on the CPU; the run needs CUDA."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.device import airbench
from trainable.config import load_config
from trainable.data.datasets import load_splits


def test_the_data_is_written_as_airbench_saves_it(tmp_path: Path) -> None:
    config = load_config(
        "configs/cifar10_fastnet.yaml",
        ["dataset.name=synthetic", "dataset.image_size=32", "dataset.synthetic_train_size=200",
         "dataset.synthetic_test_size=50", "dataset.num_classes=10"],
    )  # fmt: skip
    splits = load_splits(config.dataset)
    airbench.export_for_airbench(splits, tmp_path / "cifar10")
    train = torch.load(tmp_path / "cifar10" / "train.pt", weights_only=True)
    test = torch.load(tmp_path / "cifar10" / "test.pt", weights_only=True)
    # airbench's CifarLoader: images uint8 (N, H, W, C), permuted to NCHW on the GPU
    assert train["images"].dtype == torch.uint8 and tuple(train["images"].shape[1:]) == (32, 32, 3)
    assert len(train["images"]) == len(train["labels"]) == 200  # train + validation: all of it
    assert len(test["labels"]) == 50 and test["classes"] == list(splits.classes)
    assert train["labels"].dtype == torch.int64


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is the no-GPU path")
def test_without_a_gpu_it_refuses_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert airbench.main(["--data-root", "nowhere"]) == 2
    err = capsys.readouterr().err.strip()
    assert "CUDA" in err and "\n" not in err
