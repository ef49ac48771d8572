"""What the training loop (lstmtext.training.loop) needs of a task; lstmtext.lm.task and
lstmtext.classifier.task are the two there are."""

from __future__ import annotations

from typing import Any, Protocol

from torch import Tensor, nn


class Task(Protocol):
    """What the loop needs of a task. A batch is whatever the task's methods pass between them."""

    steps_per_epoch: int

    @property
    def model(self) -> nn.Module: ...

    def next_batch(self, step: int) -> Any: ...
    def rate_factor(self, batch: Any) -> float: ...
    def loss(self, network: nn.Module, batch: Any) -> tuple[Tensor, Tensor]: ...  # objective, loss
    def advance(self, batch: Any) -> None: ...  # the step was taken: move past the batch
    def tokens(self, batch: Any) -> int: ...
    def evaluate(self) -> dict[str, float] | None: ...  # with "val_loss"; None: no validation data
    def score(self, metrics: dict[str, float]) -> tuple[float, ...]: ...  # higher is better
    def describe(self, metrics: dict[str, float]) -> str: ...
    def state_dict(self) -> dict[str, Any]: ...
    def tensors(self) -> dict[str, Tensor]: ...
    def load_state_dict(self, state: dict[str, Any], tensors: dict[str, Tensor]) -> None: ...
