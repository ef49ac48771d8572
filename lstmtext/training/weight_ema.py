"""A moving average of a model's weights (Polyak averaging), the weights a run evaluates and keeps.

The weights after the last step sit wherever the last few noisy gradients left them; their
exponential moving average sits nearer the middle of the valley those steps wander in
(AWD-LSTM averages its SGD iterates for the same reason). Against an earlier run of the same
recipe without it (BENCHMARKS.md), an averaged PTB run scored a lower validation loss at every
shared evaluation step, an averaged Tiny Shakespeare run only until its raw weights began to
overfit. Training goes on from the raw weights.

Three things in lstmtext average; this module is the first:
- weight_ema: one run's weights, averaged over its training steps as it trains (`--ema`);
- checkpoint_average: saved checkpoints' weights, averaged after training (`lstmtext average`);
- lm_ensemble and classify.Ensemble: several models' predicted probabilities, the weights
  untouched (`--model` given more than once).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

PREFIX = "average."  # tensor names in a resume checkpoint


class WeightAverage:
    """average <- decay * average + (1 - decay) * weights, after every optimizer step."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        # named_parameters yields a tied weight once, so the average of a tied weight stays tied
        self.names, self.params = zip(*model.named_parameters(), strict=True)
        self.average = [p.detach().float().clone() for p in self.params]

    def update(self, step: int) -> None:
        """Fold in the weights after optimizer step `step` (1 for the first)."""
        # The decay ramps up (as TensorFlow's ExponentialMovingAverage with num_updates does), so a
        # short run's average is not dominated by the random weights it started from.
        decay = min(self.decay, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(self.average, [p.detach().float() for p in self.params], 1.0 - decay)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its own weights again after it."""
        with torch.no_grad():
            own = [p.detach().clone() for p in self.params]
            for param, average in zip(self.params, self.average, strict=True):
                param.copy_(average)
        try:
            yield
        finally:
            with torch.no_grad():
                for param, weights in zip(self.params, own, strict=True):
                    param.copy_(weights)

    def tensors(self) -> dict[str, Tensor]:
        return {PREFIX + name: average for name, average in zip(self.names, self.average, strict=True)}

    def load(self, tensors: dict[str, Tensor]) -> None:
        """Take the average saved by `tensors()`; a checkpoint without one restarts it from the
        current weights (a run that turns averaging on when it resumes)."""
        for index, (name, param) in enumerate(zip(self.names, self.params, strict=True)):
            saved = tensors.get(PREFIX + name)
            source = saved if saved is not None and saved.shape == param.shape else param.detach()
            self.average[index] = source.to(param.device, torch.float32).clone()


def kept_weights(average: WeightAverage | None) -> contextlib.AbstractContextManager[None]:
    """The weights a run evaluates and saves as its model: the average when there is one."""
    return average.applied() if average is not None else contextlib.nullcontext()
