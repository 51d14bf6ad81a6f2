"""The final training's epoch time, measured by a short probe of it (`tuner.stages.probe`)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from trainable.config import build_config
from trainable.data.datasets import load_splits
from trainable.data.loaders import train_steps
from trainable.model.registry import MODELS, register
from tuner.stages import probe
from tuner.stages.probe import full_epoch_s, write_share

TINY = {
    "dataset": {
        "name": "synthetic",
        "num_classes": 3,
        "image_size": 16,
        "synthetic_train_size": 300,
        "synthetic_test_size": 30,
    },
    "model": {"name": "smallnet", "width": 8, "depth": 2},
    "batch_size": 50,
    "epochs": 40,
    "precision": "fp32",
}


def test_the_training_part_scales_with_the_images_the_rest_does_not() -> None:
    # 2 s of training on 1,000 images, 0.4 s of evaluation; the checkpoint is charged apart
    epoch = {"train_s": 2.0, "epoch_s": 2.4, "checkpoint_s": 0.1}
    assert full_epoch_s(epoch, images=10_000, probed=1000) == pytest.approx(20.4)
    assert full_epoch_s(epoch, images=1000, probed=1000) == pytest.approx(2.4)


@pytest.mark.parametrize(
    ("interval_s", "share"),
    [(0.0, 0.1), (1.5, 0.1), (2.0, 0.1), (30.0, 0.1 * 2.0 / 30.0), (math.inf, 0.0)],
)
def test_an_epoch_pays_its_share_of_the_checkpoint_writes(interval_s: float, share: float) -> None:
    # A 0.1-s write after 2-s epochs: every epoch at intervals up to 2 s, one in 15 at 30 s.
    assert write_share(0.1, epoch_s=2.0, interval_s=interval_s) == pytest.approx(share)


@pytest.mark.parametrize(
    ("probed", "epochs"), [(8192, 2), (100_000, 2), (4096, 4), (3000, 6), (2048, 8), (50, 8)]
)
def test_the_fewer_images_probed_the_more_epochs(probed: int, epochs: int) -> None:
    # about 2 x 8,192 images in all, within 2 to 8 epochs
    assert probe.probe_epochs(probed) == epochs


@pytest.mark.parametrize("cap", [10_000, 200])
def test_the_probe_trains_its_epochs_on_at_most_its_share(
    cap: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(probe, "PROBE_IMAGES", cap)
    config = build_config(TINY)
    data = load_splits(config.dataset)
    measured = probe.measure_epoch(config.to_dict(), data, 0.0)
    assert measured["probed_images"] == min(cap, len(data.train))
    assert measured["probe_epochs"] == probe.probe_epochs(min(cap, len(data.train)))
    assert measured["epoch_s"] > 0 and measured["first_epochs_extra_s"] == 0  # no whitening stem
    # the one write at its end was timed, and at an interval of 0 every epoch carries it
    assert measured["write_s"] > 0 and measured["epoch_s"] > measured["write_s"]
    # a refit probes the validation images too, as the final training trains on them
    refit = build_config(TINY | {"dataset": TINY["dataset"] | {"val_fraction": 0.0}})
    whole = len(load_splits(refit.dataset).train)
    assert probe.measure_epoch(refit.to_dict(), data, 0.0)["probed_images"] == min(cap, whole)


def test_a_config_two_epochs_cannot_train_gives_no_measurement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 100 images at batch 50: 4 steps in 2 epochs, a one-step warm-up the schedule refuses
    monkeypatch.setattr(probe, "PROBE_IMAGES", 100)
    config = build_config(TINY)
    assert probe.measure_epoch(config.to_dict(), load_splits(config.dataset), 0.0) == {}


def test_a_whitening_stem_s_slower_first_epochs_are_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the probe's epochs, as full epochs: 3 s (bias training) then 2 s each
    times = itertools.chain([3.0], itertools.repeat(2.0))
    monkeypatch.setattr(probe, "full_epoch_s", lambda *_a: next(times))
    whiten = {"name": "fastnet", "width": 8, "depth": 2, "stem": "whiten"}
    config = build_config(TINY | {"model": whiten | {"whiten": {"images": 64, "bias_epochs": 3}}})
    # checkpointed never but at its end: no write's share in the epoch
    measured = probe.measure_epoch(config.to_dict(), load_splits(config.dataset), 0.0, math.inf)
    # the final training's 3 bias epochs cost 1 s more each than the steady 2 s
    assert measured["epoch_s"] == 2.0 and measured["first_epochs_extra_s"] == pytest.approx(3.0)


def test_the_steady_epoch_is_the_median_of_all_but_the_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a short-epoch folder: 8 epochs, one of them slowed (as a shared machine does)
    times = iter([0.5, 0.40, 0.38, 0.70, 0.41, 0.39, 0.42, 0.40])
    monkeypatch.setattr(probe, "full_epoch_s", lambda *_a: next(times))
    config = build_config(TINY)
    measured = probe.measure_epoch(config.to_dict(), load_splits(config.dataset), 0.0, math.inf)
    assert measured["probe_epochs"] == 8
    assert measured["epoch_s"] == pytest.approx(0.40)  # not the 0.70, nor the mean 0.443
    assert measured["first_epochs_extra_s"] == 0  # no whitening stem: no slower first epochs


@pytest.mark.parametrize(("good_epochs", "timed"), [(0, None), (1, None), (2, 2), (5, 5)])
def test_a_probe_that_diverges_is_timed_on_the_epochs_before(
    good_epochs: int, timed: int | None
) -> None:
    # NaN losses from epoch good_epochs + 1. The digits folder's winner diverged in its
    # probe's 3rd epoch, and the run crashed on the untimed report of that epoch (session 18).
    config = build_config(TINY)
    data = load_splits(config.dataset)
    steps = train_steps(len(data.train), config.batch_size)

    @register("probe-nan")
    def nan_net(num_classes: int, width: int, depth: int, dropout: float) -> nn.Module:
        class Nan(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.fc = nn.Linear(3, num_classes)
                self.calls = 0

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                out = self.fc(x.mean(dim=(2, 3)))
                if not self.training:
                    return out
                self.calls += 1
                return out * float("nan") if self.calls > good_epochs * steps else out

        return Nan()

    try:
        config = build_config(TINY | {"model": {"name": "probe-nan"}})
        measured = probe.measure_epoch(config.to_dict(), data, 0.0)
        if timed is None:  # fewer than a first and a steady epoch: no measurement
            assert measured == {}
        else:
            assert measured["probe_epochs"] == timed and measured["epoch_s"] > 0
            assert measured["write_s"] == 0  # it never reached its one write
    finally:
        del MODELS["probe-nan"]
