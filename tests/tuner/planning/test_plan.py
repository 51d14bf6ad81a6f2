"""The planner's sizing: folders of each shape, a fake machine, measured speeds given."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from trainable.data.inspect import FolderSummary
from tuner.planning.machine import Machine
from tuner.planning.plan import MAX_RETRAIN_STEPS, RESERVE, Speed, make_plan, name_for
from tuner.planning.recipe import CPU_IMAGE_SIZE_CAP, architecture
from tuner.planning.search_size import SHORT_HORIZON, batch_for
from tuner.spec import validate_spec

LAPTOP = Machine(cpus=2, memory_gib=24)
GPU_BOX = Machine(cpus=16, memory_gib=128, gpus=1, gpu_name="NVIDIA H100", bf16=True)
SPEED = Speed(trial_images_per_s=1000, retrain_images_per_s=1800)


def folder(
    classes: int = 10, per_class: int = 5000, side: int = 32, test: int = 1000
) -> FolderSummary:
    return FolderSummary(
        root=Path("/data/pets"),
        classes=tuple(f"c{i}" for i in range(classes)),
        train_counts=(per_class,) * classes,
        test_counts=(test,) * classes,
        test_carved=False,
        split_note="",
        sizes=((side, side),) * 10,
        modes={"RGB": 10},
        decode_s_per_image=0.0002,
        sampled=10,
    )


def test_cifar_sized_folder_on_a_laptop_fills_the_budget() -> None:
    data, budget = folder(), 600.0
    plan = make_plan(data, LAPTOP, budget, SPEED, elapsed_s=10)
    # Every second is accounted for: fixed costs (the 5% reserve included), search, training.
    assert plan.fixed_s + plan.search_s + plan.retrain_s <= budget
    assert plan.fixed_s >= RESERVE * budget + 10
    assert budget - (plan.fixed_s + plan.search_s + plan.retrain_s) < 50_000 / 1800  # < 1 epoch
    # Most of it trains the final model, on every training image.
    assert plan.retrain_s > plan.search_s
    assert plan.retrain_epochs == int(0.65 * (budget - plan.fixed_s) / (50_000 / 1800))
    assert plan.arch.concurrency == 2 and plan.arch.cpus_per_trial == 1
    spec = validate_spec(plan.spec())
    assert spec.retrain.epochs == plan.retrain_epochs and spec.retrain.refit
    assert spec.retrain.cpus == 2 and spec.retrain.seeds == 1
    assert spec.time_budget_s == pytest.approx(plan.search_s, abs=0.1)
    assert spec.base["dataset"]["train_subset"] == plan.trial_subset <= 45_000
    assert spec.searcher.base_first and "augment.hflip" in spec.space


def test_a_long_budget_caps_training_and_searches_with_the_rest() -> None:
    plan = make_plan(folder(per_class=100), LAPTOP, 3600, SPEED)
    # The cap is in optimizer steps: a 1,000-image folder trains for 320 epochs at batch 32
    assert plan.retrain_epochs == MAX_RETRAIN_STEPS * batch_for(900) // 1000 == 320
    assert plan.search_s > plan.retrain_s
    assert plan.num_samples >= 12


def test_trials_get_longer_where_every_image_fits_and_stay_short_on_a_subset() -> None:
    small = make_plan(folder(classes=3, per_class=900), LAPTOP, 240, SPEED)
    # every image in every trial, with time for more trials than needed: the trials get
    # longer instead, up to the final training's epochs, so the search ranks configs near
    # the final training's horizon
    assert small.trial_subset == int(2700 * 0.9)
    assert SHORT_HORIZON < small.max_t <= small.retrain_epochs
    assert small.num_samples >= 12
    assert validate_spec(small.spec()).scheduler.max_t == small.max_t
    big = make_plan(folder(), LAPTOP, 600, SPEED)
    assert big.trial_subset < 45_000 and big.max_t == min(SHORT_HORIZON, big.retrain_epochs // 2)


def test_a_short_budget_on_a_big_folder_searches_a_subset_briefly() -> None:
    plan = make_plan(folder(per_class=20_000), LAPTOP, 600, SPEED)
    epoch_s = 200_000 / 1800
    # Fewer than 4 epochs at the usual share: training takes 85%, in whole epochs, and the
    # search what is left (a subset, one epoch a trial).
    assert plan.retrain_epochs == int(0.85 * (600 - plan.fixed_s) / epoch_s) == 3
    assert any("short budget" in note for note in plan.notes)
    assert plan.search_s == pytest.approx(600 - plan.fixed_s - 3 * epoch_s)
    assert plan.trial_subset < 180_000 and plan.max_t == 1


def test_too_short_a_budget_says_how_long_is_enough() -> None:
    with pytest.raises(ValueError, match=r"too short for this folder here: at least \d+ s"):
        make_plan(folder(per_class=20_000), LAPTOP, 60, SPEED)


@pytest.mark.parametrize(
    ("side", "cpu", "gpu"), [(8, 8, 8), (28, 28, 28), (96, 32, 96), (256, 32, 128)]
)
def test_image_size_follows_the_images_capped_per_device(side: int, cpu: int, gpu: int) -> None:
    assert architecture(folder(side=side), LAPTOP).image_size == min(cpu, CPU_IMAGE_SIZE_CAP)
    assert architecture(folder(side=side), GPU_BOX).image_size == gpu


def test_a_gpu_packs_four_trials_and_retrains_on_the_whole_card() -> None:
    plan = make_plan(folder(), GPU_BOX, 600, Speed(5000, 20_000))
    spec = validate_spec(plan.spec())
    assert spec.max_concurrent_trials == 4 and spec.resources.gpu == 0.25
    assert spec.resources.cpus == 4 and spec.retrain.gpu == 1 and spec.base["device"] == "cuda"
    assert spec.base["model"]["width"] == 64


@pytest.mark.parametrize("classes", [2, 1000])
def test_class_counts_from_2_to_1000_plan_valid_specs(classes: int) -> None:
    data = folder(classes=classes, per_class=max(5, 20_000 // classes), test=5)
    plan = make_plan(data, LAPTOP, 900, SPEED)
    spec = validate_spec(plan.spec())
    assert spec.base["dataset"]["val_subset"] >= min(500, 10 * classes) or classes == 1000
    assert plan.trial_subset >= min(int(data.num_train * 0.9), 20 * classes)


def test_imbalanced_and_tiny_folders_plan_valid_specs() -> None:
    tiny = replace(folder(classes=3), train_counts=(2000, 600, 200), test_counts=(300,) * 3)
    plan = make_plan(tiny, LAPTOP, 300, SPEED)
    # 10:1 classes: plain accuracy would reward neglecting the small class
    assert validate_spec(plan.spec()).scheduler.metric == "val_balanced_acc"
    assert any("balanced accuracy" in note for note in plan.notes)
    assert make_plan(folder(), LAPTOP, 300, SPEED).spec()["scheduler"]["metric"] == "val_acc"
    few = folder(classes=10, per_class=50, test=100)
    plan = make_plan(few, LAPTOP, 300, SPEED)
    assert plan.trial_subset == 450 and plan.batch_size == 32
    validate_spec(plan.spec())


def test_names_come_from_the_folder_and_are_safe() -> None:
    assert name_for(Path("/data/my pets (v2)")) == "my-pets-v2"
    assert name_for(Path("/")) == "data"


def test_a_disturbed_whole_machine_measurement_is_bounded() -> None:
    from tuner.planning.calibrate import bounded

    assert bounded(trial=1000, whole=580, threads_ratio=2) == 1000  # slower than one: disturbed
    assert bounded(trial=1000, whole=1900, threads_ratio=2) == 1900
    assert bounded(trial=1000, whole=2600, threads_ratio=2) == 2000  # faster than linear


def test_speeds_are_measured_at_the_batch_a_small_folder_trains_at() -> None:
    from tuner.planning.search_size import CALIBRATION_BATCH, calibration_batch

    assert calibration_batch(50_000) == CALIBRATION_BATCH  # CIFAR-10: unchanged
    assert calibration_batch(1_438) == 64  # scikit-learn's digits: the plan's batch
    assert calibration_batch(500) == 32


def test_the_plan_says_what_its_validation_split_can_tell_apart() -> None:
    """One standard error of a difference of two accuracies on the search's validation split,
    at 50% and 90%: a user sees before the run that a small folder's search is coarse."""
    (note,) = (n for n in make_plan(folder(), LAPTOP, 600, SPEED).notes if "tell apart" in n)
    assert "500 validation images" in note and "3.2 points of accuracy at 50%, 1.9 at 90%" in note
    few = make_plan(folder(classes=10, per_class=50, test=100), LAPTOP, 300, SPEED)
    assert any("50 validation images can tell apart: 10.0 points" in n for n in few.notes)
    # 10:1 classes: the 280 images count as 125 for balanced accuracy (200, 60 and 20 a class)
    skewed = replace(folder(classes=3), train_counts=(2000, 600, 200), test_counts=(300,) * 3)
    (note,) = (n for n in make_plan(skewed, LAPTOP, 300, SPEED).notes if "tell apart" in n)
    assert "280 validation images" in note and "6.3 points of balanced accuracy at 50%" in note
