"""Optimizer and learning-rate schedule, the same for every task.

Layer groups (embedding, each LSTM layer, the head) carry ULMFiT's two fine-tuning options:
discriminative rates (each group learns `discriminative_lr` times slower than the one above)
and gradual unfreezing (the top group trains alone first, then one more group every
`unfreeze_every` steps), so a pretrained core is not wiped out by the first large gradients
of a new head.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from lstmtext.config import TrainConfig
from lstmtext.training.schedule import slanted_triangular

FUSED_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def fused_adam(params: Iterable[nn.Parameter]) -> bool:
    """Whether Adam/AdamW can run as one fused kernel over all of `params`.

    On CPU PyTorch's default is a loop of a dozen small ops per tensor; fused, the update of
    all of them is one kernel."""
    return all(p.device.type in ("cpu", "cuda") and p.dtype in FUSED_DTYPES for p in params)


def layer_groups(model: nn.Module) -> list[list[nn.Parameter]]:
    """A model's parameters from the bottom up: embedding, each LSTM layer, then the rest (the
    head). A weight shared by two places (a tied head) counts once, in its lowest group."""
    core: Any = model.core
    seen: set[int] = set()

    def fresh(params: Iterable[nn.Parameter]) -> list[nn.Parameter]:
        kept = [p for p in params if id(p) not in seen]
        seen.update(id(p) for p in kept)
        return kept

    groups = [fresh(core.embedding.parameters())]
    for layer in range(core.config.num_layers):
        groups.append(fresh(p for n, p in core.lstm.named_parameters() if n.endswith(f"_l{layer}")))
    groups.append(fresh(model.parameters()))
    return groups


class Optimization:
    """The optimizer over a model's parameter groups, each group's share of the rate, and which
    groups train at a step."""

    def __init__(self, model: nn.Module, config: TrainConfig) -> None:
        self.config = config
        self.groups = layer_groups(model)
        top = len(self.groups) - 1
        if config.discriminative_lr == 1.0:
            # One group in the model's order: the rate is the same everywhere, and resume
            # checkpoints hold one group.
            param_groups = [{"params": list(model.parameters())}]
            self.scales = [1.0]
        else:
            param_groups = [{"params": params} for params in self.groups]
            self.scales = [config.discriminative_lr ** -(top - depth) for depth in range(len(self.groups))]
        self.optimizer = build_optimizer(param_groups, config, fused=fused_adam(model.parameters()))
        self.model = model
        self.stage = -1
        # What clipping sees, in the model's order (the norm's sum is then the same as over
        # model.parameters() when all train); set anew when a group unfreezes.
        self.trainable = list(model.parameters())

    def set_rate(self, lr: float) -> None:
        """`lr` for the top group; the groups below it get their discriminative share."""
        for group, scale in zip(self.optimizer.param_groups, self.scales, strict=True):
            group["lr"] = lr * scale

    def unfreeze(self, step: int, say: Callable[[str], None]) -> None:
        """At stage k (step // unfreeze_every) the top k+1 groups train; the rest keep their weights."""
        every = self.config.unfreeze_every
        stage = len(self.groups) if every == 0 else step // every
        if stage == self.stage:
            return
        self.stage = stage
        top = len(self.groups) - 1
        for depth, params in enumerate(self.groups):
            for parameter in params:
                parameter.requires_grad_(depth >= top - stage)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        if every and stage <= top:
            say("training the head" if stage == 0 else f"training the top {stage + 1} layer groups")


def build_optimizer(param_groups: list[dict], config: TrainConfig, *, fused: bool) -> torch.optim.Optimizer:
    """adam: Adam; adamw: AdamW (decoupled weight decay); sgd: plain SGD (no momentum, as the
    PyTorch word_language_model example and AWD-LSTM's first phase use it)."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(param_groups, lr=config.lr, weight_decay=config.weight_decay)
    adam = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return adam(param_groups, lr=config.lr, weight_decay=config.weight_decay, fused=fused)


class LearningRate:
    """Warmup, then plateau decay, cosine decay, ULMFiT's slanted triangle or a constant rate.
    Its state (the plateau scale) is plain JSON.

    Cosine and slanted follow the run's progress: step / total steps, or, for a run bound by
    --max-time alone, seconds trained / max_time (its number of steps is not known). Cosine ends
    at 5 % of the peak rate, not zero, so the last steps still learn."""

    def __init__(self, config: TrainConfig, total_steps: int) -> None:
        self.config = config
        self.total_steps = total_steps
        self.plateau_scale = 1.0

    def at(self, step: int, elapsed: float = 0.0) -> float:
        base = self.config.lr * self.plateau_scale
        if self.config.warmup_steps and step < self.config.warmup_steps:
            return base * (step + 1) / self.config.warmup_steps
        if self.config.lr_schedule not in ("cosine", "slanted"):
            return base
        if self.total_steps > 0:
            progress = min(step / self.total_steps, 1.0)
        elif self.config.max_time:
            progress = min(elapsed / self.config.max_time, 1.0)
        else:
            return base
        if self.config.lr_schedule == "slanted":
            return base * slanted_triangular(progress)
        return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))

    def on_stall(self) -> None:
        if self.config.lr_schedule == "plateau":
            self.plateau_scale *= self.config.lr_decay
