"""Lookahead (airbench94, from hlb-cifar10): an EMA of the weights that the net is pulled back
to every few steps, and that the net becomes at the end of training."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainable.config import LookaheadConfig
from trainable.training.horizon import Horizon


class Lookahead:
    """Call `after_step()` after every optimizer step. Every `every_steps` steps the EMA moves
    towards the net (`ema = decay * ema + (1 - decay) * net`) and the net is set to it; after
    the last of the `horizon`'s steps the net is set to the EMA once more. The decay
    ramps up as `decay ** every_steps * progress ** ramp_power`, progress being
    `step / total_steps` unless a deadline re-planned the run (`Horizon`): early on the EMA is
    the net itself. Floating-point state (weights and BatchNorm running statistics) takes part."""

    def __init__(self, net: nn.Module, cfg: LookaheadConfig, horizon: Horizon) -> None:
        self.cfg, self.horizon, self.steps = cfg, horizon, 0
        # state_dict() tensors share storage with the net's: in-place copies reach the net,
        # and load_state_dict (resume, best checkpoint) copies into the same storage.
        state = net.state_dict()
        self.keys = [k for k, v in state.items() if v.is_floating_point()]
        self.live = [state[k] for k in self.keys]
        self.ema = [t.detach().clone() for t in self.live]

    def decay_at(self, step: int) -> float:
        ramp = self.horizon.progress(step) ** self.cfg.ramp_power
        return self.cfg.decay**self.cfg.every_steps * ramp

    @torch.no_grad()
    def after_step(self) -> None:
        self.steps += 1
        if self.steps % self.cfg.every_steps == 0:
            torch._foreach_lerp_(self.ema, self.live, 1 - self.decay_at(self.steps))
            torch._foreach_copy_(self.live, self.ema)
        if self.steps == self.horizon.total:
            torch._foreach_copy_(self.live, self.ema)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "ema": dict(zip(self.keys, self.ema, strict=True))}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        for ema, key in zip(self.ema, self.keys, strict=True):
            ema.copy_(state["ema"][key])
