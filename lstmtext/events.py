"""What a training run says as it goes (TrainEvent) and what it ends with (TrainResult).

The loop never prints: it hands events to a callback, and the caller decides what to show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TrainEvent:
    """One thing the loop has to say. kind: log | eval | checkpoint | warning | note | stop, or prepare
    (tokenising a big corpus into its id cache: step and total_steps are bytes done and in all)."""

    kind: str
    step: int
    total_steps: int
    loss: float | None = None
    val_loss: float | None = None
    lr: float | None = None
    tokens_per_second: float | None = None
    elapsed: float = 0.0
    message: str = ""

    @property
    def eta(self) -> float | None:
        if self.step <= 0 or self.total_steps <= 0:
            return None
        return self.elapsed / self.step * max(self.total_steps - self.step, 0)


@dataclass
class TrainResult:
    steps: int
    best_val_loss: float | None
    best_step: int | None
    last_loss: float | None
    stop_reason: str  # finished | max_time | early_stopping | interrupted | diverged
    out_dir: Path
    elapsed: float
    history: list[dict[str, Any]] = field(default_factory=list)
    best_metrics: dict[str, float] = field(default_factory=dict)  # the best evaluation's figures
    labels: tuple[str, ...] = ()  # a classifier's classes
    temperature: float | None = None  # a classifier's, fitted on its validation data at the end

    @property
    def best_val_accuracy(self) -> float | None:
        return self.best_metrics.get("val_accuracy")
