"""Dynamic evaluation (Krause et al. 2018): the model goes on learning from the text it has just scored.

Text has local regularities a trained model cannot know in advance: the names of this
article, the words of this speaker. Dynamic evaluation reads the held-out text in order, in
segments; each segment is scored with the current weights first, and only then do the
weights take one gradient step on that segment's loss. Every token is therefore predicted by
a model that has seen the training text and the held-out text *before* it, never the token
itself or anything after it, so the figure is an honest loss of an adaptive model (it is
reported apart from the static one, as the literature does).

Each step is plain SGD on the segment's mean loss, then a pull back toward the trained
weights by `decay` of the distance (Krause et al.'s decay toward the prior), so the model
follows the recent text without drifting off. The trained weights are put back at the end.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor

from lstmtext.core.model import LanguageModel
from lstmtext.data.corpus import TokenStream
from lstmtext.errors import ConfigError

# The segment length and number of streams when the caller names none: short segments adapt
# often, and one stream reads the text in order.
DEFAULT_SEQ_LEN = 20
DEFAULT_BATCH_SIZE = 1


@dataclass(frozen=True)
class DynamicEvaluation:
    learning_rate: float  # SGD step on each segment's mean loss (nats per token)
    decay: float = 0.0  # per step, the fraction of the way back to the trained weights

    def __post_init__(self) -> None:
        if not self.learning_rate > 0:
            raise ConfigError(f"the dynamic evaluation rate must be positive, not {self.learning_rate}")
        if not 0.0 <= self.decay < 1.0:
            raise ConfigError(f"the dynamic evaluation decay must be in [0, 1), not {self.decay}")


def dynamic_nll(
    model: LanguageModel, stream: TokenStream, device: torch.device, config: DynamicEvaluation
) -> Tensor:
    """-log P of every target of the stream (B, L - 1), fp32, each scored before the model
    learns from it; the model's weights are the trained ones again on return."""
    was_training = model.training
    model.eval()  # no dropout: the model that is scored is the one that learns
    parameters = [p for p in model.parameters() if p.requires_grad]
    trained = [p.detach().clone() for p in parameters]
    state = model.core.initial_state(stream.batch_size, device)
    scores: list[Tensor] = []
    # cuDNN's RNN backward runs only in training mode; the native kernels have no such rule.
    on_cuda = device.type == "cuda"
    no_cudnn = torch.backends.cudnn.flags(enabled=False) if on_cuda else contextlib.nullcontext()
    try:
        with no_cudnn, torch.enable_grad():
            for index in range(len(stream)):
                inputs, targets = (t.to(device, non_blocking=True) for t in stream.batch(index))
                nll, (hidden, cell) = model(inputs, state, targets)
                scores.append(nll.detach())
                gradients = torch.autograd.grad(nll.mean(), parameters)
                with torch.no_grad():
                    for parameter, gradient, start in zip(parameters, gradients, trained, strict=True):
                        parameter.sub_(gradient, alpha=config.learning_rate)
                        if config.decay:
                            parameter.lerp_(start, config.decay)
                state = hidden.detach(), cell.detach()
    finally:
        with torch.no_grad():
            for parameter, start in zip(parameters, trained, strict=True):
                parameter.copy_(start)
        model.train(was_training)
    return torch.cat(scores, dim=1)


def dynamic_loss(
    model: LanguageModel, stream: TokenStream, device: torch.device, config: DynamicEvaluation
) -> tuple[float, int]:
    """Mean -log P (nats per token) under dynamic evaluation, and the number of tokens scored:
    what train.evaluate_stream returns for the static model."""
    nll = dynamic_nll(model, stream, device, config)
    return float(nll.double().mean()), nll.numel()
