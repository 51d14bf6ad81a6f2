"""Early stopping on the monitored validation metric (its direction from `vocab`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from trainable.vocab import improves


@dataclass
class EarlyStopper:
    mode: str
    min_delta: float
    patience: int | None
    best: float = math.nan
    best_epoch: int = 0
    bad_epochs: int = 0

    def update(self, value: float, epoch: int) -> bool:
        if improves(self.mode, value, self.best, self.min_delta):
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_epochs >= self.patience
