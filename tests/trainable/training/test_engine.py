from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.conftest import Interrupted, stop_at
from trainable.config import TrainConfig
from trainable.errors import ConfigError, DeviceError, UserError
from trainable.files.checkpoint import SavePolicy
from trainable.model.registry import MODELS, register
from trainable.training.engine import train

TinyConfig = Callable[..., TrainConfig]


def test_learns_synthetic_data_well_above_chance(tiny_config: TinyConfig, tmp_path: Path) -> None:
    reports: list[dict[str, float]] = []
    result = train(tiny_config(epochs=4), tmp_path, report=lambda m, _d: reports.append(m))
    assert result.status == "completed" and result.epochs_run == 4
    assert [m["epoch"] for m in reports] == [1, 2, 3, 4]
    assert set(reports[0]) >= {
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "lr",
        "epoch_s",
        "images_per_s",
        "checkpoint_s",
    }
    assert result.best_metric > 0.8  # chance is 0.25 with 4 classes
    assert result.val_metrics is not None
    assert list(result.val_metrics["per_class"]) == [f"class_{i}" for i in range(4)]
    assert (tmp_path / "val_metrics" / "confusion_matrix.png").is_file()
    assert (tmp_path / "config.yaml").read_text() == tiny_config(epochs=4).to_yaml()


def test_evaluate_best_false_skips_the_per_class_validation_metrics(
    tiny_config: TinyConfig, tmp_path: Path
) -> None:
    result = train(tiny_config(epochs=1), tmp_path, report=lambda *_: None, evaluate_best=False)
    assert result.best_checkpoint.exists() and result.val_metrics is None
    assert not (tmp_path / "val_metrics").exists()


def test_checkpoint_holds_full_state_and_loads_weights_only(
    tiny_config: TinyConfig, tmp_path: Path
) -> None:
    train(tiny_config(epochs=1), tmp_path, report=lambda *_: None)
    state = torch.load(tmp_path / "best" / "checkpoint.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "scaler", "epoch", "config", "metrics"} <= set(state)
    assert state["epoch"] == 1 and state["classes"] == [f"class_{i}" for i in range(4)]
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temporaries


def test_dataloader_path_learns_too(tiny_config: TinyConfig, tmp_path: Path) -> None:
    cfg = tiny_config(epochs=3, loader={"kind": "dataloader", "num_workers": 0})
    assert train(cfg, tmp_path, report=lambda *_: None).best_metric > 0.8


def test_early_stopping_stops_after_patience(tiny_config: TinyConfig, tmp_path: Path) -> None:
    # min_delta 0.9 on accuracy: nothing after epoch 1 can count as an improvement.
    cfg = tiny_config(epochs=10, early_stopping={"patience": 2, "min_delta": 0.9})
    result = train(cfg, tmp_path, report=lambda *_: None)
    assert result.status == "early_stopped"
    assert result.epochs_run == 3 and result.best_epoch == 1
    assert torch.load(tmp_path / "best" / "checkpoint.pt", weights_only=True)["epoch"] == 1


def test_resume_equals_uninterrupted_run(tiny_config: TinyConfig, tmp_path: Path) -> None:
    cfg = tiny_config(epochs=4, deterministic=True, model={"dropout": 0.3}, seed=5)
    full = train(cfg, tmp_path / "full", report=lambda *_: None)

    with pytest.raises(Interrupted):
        train(cfg, tmp_path / "cut", report=stop_at(2))
    resumed = train(
        cfg, tmp_path / "cut", report=lambda *_: None, resume_from=tmp_path / "cut" / "last"
    )
    assert resumed.epochs_run == 4
    for a, b in zip(full.history, resumed.history, strict=True):
        assert {k: a[k] for k in ("train_loss", "val_loss", "val_acc")} == {
            k: b[k] for k in ("train_loss", "val_loss", "val_acc")
        }
    final_a = torch.load(tmp_path / "full" / "last" / "checkpoint.pt", weights_only=True)["model"]
    final_b = torch.load(tmp_path / "cut" / "last" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)


def test_save_policy_writes_at_its_epochs_and_the_end_and_resume_loses_only_the_gap(
    tiny_config: TinyConfig, tmp_path: Path
) -> None:
    """A search's policy: checkpoints at epoch 2 (a rung) and the last epoch only. A run
    stopped after epoch 3 resumes from epoch 2's checkpoint and ends as an uncut run does."""
    cfg = tiny_config(epochs=4, deterministic=True, model={"dropout": 0.3}, seed=5)
    policy = SavePolicy(interval_s=1e9, epochs=frozenset({2}))
    saved: list[Path | None] = []
    full = train(cfg, tmp_path / "full", report=lambda m, d: saved.append(d), save_policy=policy)
    assert saved == [None, tmp_path / "full" / "last", None, tmp_path / "full" / "last"]
    assert all(m["checkpoint_s"] >= 0 for m in full.history)
    # best/ is the best epoch even when it improved between writes (kept, written with last/).
    best = torch.load(tmp_path / "full" / "best" / "checkpoint.pt", weights_only=True)
    assert best["epoch"] == full.best_epoch and best["metrics"][full.monitor] == full.best_metric

    with pytest.raises(Interrupted):
        train(cfg, tmp_path / "cut", report=stop_at(3), save_policy=policy)
    last = tmp_path / "cut" / "last"
    assert torch.load(last / "checkpoint.pt", weights_only=True)["epoch"] == 2  # epoch 3 is lost
    resumed = train(
        cfg, tmp_path / "cut", report=lambda *_: None, resume_from=last, save_policy=policy
    )
    assert [m["val_acc"] for m in resumed.history] == [m["val_acc"] for m in full.history]


def test_without_validation_best_is_written_with_last_and_nothing_kept_between(
    tiny_config: TinyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refit (no validation split): every epoch is the best, so best/ and last/ are written
    together when the policy says, from the same state, and no copy is made in between (a
    refit of 1,329 short epochs copied its whole state every epoch)."""
    from trainable.training import state

    copies: list[object] = []
    real_deepcopy = state.copy.deepcopy
    monkeypatch.setattr(state.copy, "deepcopy", lambda x: copies.append(x) or real_deepcopy(x))
    cfg = tiny_config(epochs=3, dataset={"val_fraction": 0.0})
    saved: list[Path | None] = []
    policy = SavePolicy(interval_s=1e9)
    result = train(cfg, tmp_path, report=lambda m, d: saved.append(d), save_policy=policy)
    assert saved == [None, None, tmp_path / "last"] and copies == []
    best = torch.load(tmp_path / "best" / "checkpoint.pt", weights_only=True)
    last = torch.load(tmp_path / "last" / "checkpoint.pt", weights_only=True)
    assert best["epoch"] == last["epoch"] == 3 == result.best_epoch
    assert all(torch.equal(best["model"][k], last["model"][k]) for k in last["model"])


def test_save_policy_interval() -> None:
    policy = SavePolicy(interval_s=30.0, epochs=frozenset({1, 3}))
    assert policy.due(1, final=False, since_s=0.5) and policy.due(5, final=True, since_s=0.0)
    assert policy.due(2, final=False, since_s=30.0) and not policy.due(2, final=False, since_s=29.9)
    assert SavePolicy().due(7, final=False, since_s=0.0)  # the default: every epoch


def test_resume_with_a_different_config_is_refused(tiny_config: TinyConfig, tmp_path: Path) -> None:
    train(tiny_config(epochs=1), tmp_path, report=lambda *_: None)
    with pytest.raises(UserError, match="different config"):
        train(tiny_config(epochs=2, seed=9), tmp_path, resume_from=tmp_path / "last")


def test_a_checkpoint_from_before_the_recipe_keys_resumes(
    tiny_config: TinyConfig, tmp_path: Path
) -> None:
    from trainable.files import checkpoint

    cfg = tiny_config(epochs=3)
    with pytest.raises(Interrupted):
        train(cfg, tmp_path / "a", report=stop_at(1))
    path = tmp_path / "a" / "last" / "checkpoint.pt"
    state = checkpoint.load(path)
    old = state["config"]  # as a trainer without the recipe options wrote it
    for key in ("lookahead", "tta_translate"):
        del old[key]
    for section, keys in {
        "optimizer": ("name", "sgd", "bn_bias_lr_scale"),
        "schedule": ("name", "triangular"),
        "model": ("stem", "whiten", "conv_init", "bn_momentum", "bn_eps", "bn_weight_frozen"),
        "augment": ("pad_mode", "hflip_mode"),
    }.items():
        for key in keys:
            del old[section][key]
    state.pop("format_version")
    checkpoint.save_atomic(state, path)
    with pytest.raises(UserError, match="different config"):  # still checked, key by key
        train(tiny_config(epochs=3, seed=3), tmp_path / "a", resume_from=path)
    resumed = train(cfg, tmp_path / "a", report=lambda *_: None, resume_from=path)
    assert resumed.epochs_run == 3 and resumed.status == "completed"


def test_existing_run_is_not_overwritten(tiny_config: TinyConfig, tmp_path: Path) -> None:
    train(tiny_config(epochs=1), tmp_path, report=lambda *_: None)
    before = (tmp_path / "last" / "checkpoint.pt").read_bytes()
    with pytest.raises(UserError, match="already holds a training run"):
        train(tiny_config(epochs=1), tmp_path, report=lambda *_: None)
    assert (tmp_path / "last" / "checkpoint.pt").read_bytes() == before


def test_non_finite_loss_stops_with_a_status(tiny_config: TinyConfig, tmp_path: Path) -> None:
    @register("explodes")
    def explodes(num_classes: int, width: int, depth: int, dropout: float) -> nn.Module:
        class Explode(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.fc = nn.Linear(3, num_classes)
                self.register_buffer("calls", torch.zeros((), dtype=torch.long))

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                self.calls += 1
                out = self.fc(x.mean(dim=(2, 3)))
                # From the second epoch's batches on, the logits become NaN.
                return out * float("nan") if self.training and int(self.calls) > 8 else out

        return Explode()

    try:
        result = train(
            tiny_config(epochs=3, model={"name": "explodes"}), tmp_path, report=lambda *_: None
        )
    finally:
        del MODELS["explodes"]
    assert result.status == "diverged"
    assert "non-finite training loss in epoch 2" in result.reason
    assert result.epochs_run == 1  # the diverged epoch is neither reported nor checkpointed


def test_fp16_grad_scaler_path_runs_on_cpu(tiny_config: TinyConfig, tmp_path: Path) -> None:
    result = train(tiny_config(epochs=2, precision="fp16"), tmp_path, report=lambda *_: None)
    assert result.status == "completed"
    scaler = torch.load(tmp_path / "last" / "checkpoint.pt", weights_only=True)["scaler"]
    assert scaler["scale"] > 0  # a live GradScaler state, not an empty (disabled) one


def test_bf16_autocast_and_channels_last_run(tiny_config: TinyConfig, tmp_path: Path) -> None:
    cfg = tiny_config(epochs=1, precision="bf16", channels_last=True)
    assert train(cfg, tmp_path, report=lambda *_: None).status == "completed"


def test_backend_flags_are_restored(tiny_config: TinyConfig, tmp_path: Path) -> None:
    assert not torch.are_deterministic_algorithms_enabled()
    train(tiny_config(epochs=1, deterministic=True), tmp_path, report=lambda *_: None)
    assert not torch.are_deterministic_algorithms_enabled()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_requested_without_gpu_is_a_clear_error(
    tiny_config: TinyConfig, tmp_path: Path
) -> None:
    with pytest.raises(DeviceError, match=r"no CUDA GPU is visible.*device: auto"):
        train(tiny_config(device="cuda"), tmp_path)
    assert not tmp_path.joinpath("config.yaml").exists()


def test_flip_tta_is_mirror_invariant() -> None:
    from trainable.model.registry import build_model
    from trainable.training.evaluation import logits_of
    from trainable.training.runtime import Runtime

    torch.manual_seed(0)
    net = build_model("smallnet", 5, 4, 2, 0.0).eval()
    rt = Runtime(torch.device("cpu"), torch.float32)
    x = torch.randn(3, 3, 16, 16)
    plain, mirrored = logits_of(net, x, rt, False), logits_of(net, x.flip(3), rt, False)
    assert not torch.allclose(plain, mirrored)  # the model itself is not mirror-invariant
    assert torch.allclose(
        logits_of(net, x, rt, True), logits_of(net, x.flip(3), rt, True), atol=1e-5
    )
    assert torch.allclose(logits_of(net, x, rt, True), (plain + mirrored) / 2, atol=1e-6)


@pytest.mark.slow
def test_compile_time_is_reported_apart_from_epoch_throughput(
    tiny_config: TinyConfig, tmp_path: Path
) -> None:
    history: list[dict[str, float]] = []
    result = train(
        tiny_config(epochs=2, compile=True), tmp_path, report=lambda m, _d: history.append(m)
    )
    assert result.status == "completed"
    first, second = history
    # The compile time is its own field of the first epoch, kept out of its throughput.
    assert first["compile_s"] > 0 and "compile_s" not in second
    assert first["train_s"] > 0
    assert first["images_per_s"] > 0


def test_a_one_step_warm_up_is_refused_before_training(
    tiny_config: TinyConfig, tmp_path: Path
) -> None:
    # 512 training images / 256 = 2 batches x 2 epochs = 4 steps; 0.25 x 4 = a one-step
    # warm-up, on which OneCycleLR divides by zero.
    cfg = tiny_config(epochs=2, batch_size=256)
    with pytest.raises(ConfigError, match=r"schedule.pct_start=0.25 x 4 optimizer steps"):
        train(cfg, tmp_path, report=lambda *_: None)
    assert not list(tmp_path.iterdir())  # refused before anything was written
    # One more epoch makes it 1.5 warm-up steps: trains.
    assert (
        train(
            tiny_config(epochs=3, batch_size=256), tmp_path / "ok", report=lambda *_: None
        ).epochs_run
        == 3
    )


def test_hooks_wrap_each_phase_and_see_each_epochs_stats(
    tiny_config: TinyConfig, tmp_path: Path
) -> None:
    import contextlib

    from trainable.training.loop import EpochStats, TrainHooks

    events: list[tuple[str, str, int]] = []
    stats: list[tuple[int, EpochStats]] = []

    @contextlib.contextmanager
    def around(phase: str, epoch: int) -> Iterator[None]:
        events.append(("enter", phase, epoch))
        yield
        events.append(("exit", phase, epoch))

    hooks = TrainHooks(around=around, epoch_stats=lambda e, s: stats.append((e, s)))
    reports: list[dict[str, float]] = []
    train(tiny_config(epochs=2), tmp_path, report=lambda m, _d: reports.append(m), hooks=hooks)
    assert events == [
        (edge, phase, epoch)
        for epoch in (1, 2)
        for phase in ("train", "evaluation")
        for edge in ("enter", "exit")
    ]
    # 512 training images in batches of 64: 8 full batches per epoch.
    assert [(e, s.images, s.finite) for e, s in stats] == [(1, 512, True), (2, 512, True)]
    assert [s.loss for _, s in stats] == [m["train_loss"] for m in reports]


def test_the_airbench_recipe_learns_and_resumes_exactly(
    recipe_config: TinyConfig, tmp_path: Path
) -> None:
    """SGD, triangular schedule, whitening (bias frozen after epoch 1), dirac init, frozen BN
    scales, lookahead, reflect translation, alternating flips and translate TTA together."""
    cfg = recipe_config(epochs=3, deterministic=True)
    full = train(cfg, tmp_path / "full", report=lambda *_: None)
    assert full.status == "completed" and full.best_metric > 0.8  # chance is 0.25
    state = torch.load(tmp_path / "full" / "last" / "checkpoint.pt", weights_only=True)
    assert state["lookahead"]["steps"] == 3 * 8
    # The last step hands the net the EMA: the saved weights are the EMA's.
    assert all(torch.equal(state["model"][k], v) for k, v in state["lookahead"]["ema"].items())

    with pytest.raises(Interrupted):
        train(cfg, tmp_path / "cut", report=stop_at(1))
    resumed = train(
        cfg, tmp_path / "cut", report=lambda *_: None, resume_from=tmp_path / "cut" / "last"
    )
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in full.history]
    final = torch.load(tmp_path / "cut" / "last" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(final[k], state["model"][k]) for k in final)


def test_no_validation_split_trains_on_every_image_and_keeps_the_final_epoch(
    tiny_config: TinyConfig, tmp_path: Path
) -> None:
    """val_fraction 0 (a production run, or a refit after a search): all training images
    train, validation metrics are NaN, and best/ is the final epoch's weights."""
    from trainable.data.datasets import load_splits
    from trainable.files import checkpoint

    config = tiny_config(epochs=3, dataset={"val_fraction": 0.0})
    splits = load_splits(config.dataset)
    assert len(splits.val) == 0 and len(splits.train) == config.dataset.synthetic_train_size
    seen: list[int] = []
    result = train(config, tmp_path, report=lambda m, _d: seen.append(int(m["epoch"])))
    assert seen == [1, 2, 3] and result.best_epoch == 3
    assert all(math.isnan(h["val_acc"]) for h in result.history)
    best = checkpoint.load(result.best_checkpoint)
    last = checkpoint.load(tmp_path / "last")
    assert best["epoch"] == 3
    assert all(torch.equal(best["model"][k], last["model"][k]) for k in best["model"])
    assert result.val_metrics is None and not (tmp_path / "val_metrics").exists()


def test_early_stopping_without_a_validation_split_is_refused(tiny_config: TinyConfig) -> None:
    with pytest.raises(ConfigError, match=r"early_stopping\.patience needs a validation split"):
        tiny_config(dataset={"val_fraction": 0.0}, early_stopping={"patience": 2})
