"""Language-model ensembles: the mixture of several models' next-token distributions.

p(y | x) = (1/K) * sum_k p_k(y | x), each model reading the text with its own carried state.
Models trained apart err on different tokens, so the mixture's loss falls below each
member's; by Jensen's inequality it is never above their mean loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lstmtext.checkpoint import Checkpoint
from lstmtext.corpus import TokenStream
from lstmtext.errors import ConfigError, CorpusError
from lstmtext.model import LanguageModel


def check_same_tokenizer(checkpoints: Sequence[Checkpoint], names: Sequence[object]) -> None:
    """A mixture sums probabilities of the same token ids: every member must share one tokenizer."""
    first = checkpoints[0].tokenizer.to_str()
    for checkpoint, name in zip(checkpoints[1:], names[1:], strict=True):
        if checkpoint.tokenizer.to_str() != first:
            raise ConfigError(
                f"{name} has another tokenizer than {names[0]}; an ensemble needs one vocabulary"
            )


def mixture_nll(member_nlls: Sequence[torch.Tensor]) -> torch.Tensor:
    """-log of the mean of the members' probabilities, from their -log p (each of one shape)."""
    stacked = -torch.stack([nll.float() for nll in member_nlls])  # log p_k, (K, ...)
    return -(torch.logsumexp(stacked, dim=0) - math.log(len(member_nlls)))


@torch.no_grad()
def ensemble_stream_loss(
    models: Sequence[LanguageModel], stream: TokenStream, device: torch.device
) -> tuple[float, int]:
    """Mean cross-entropy (nats per token) of the mixture over a stream; (loss, tokens)."""
    was_training = [model.training for model in models]
    for model in models:
        model.eval()
    states = [model.core.initial_state(stream.batch_size, device) for model in models]
    total, count = 0.0, 0
    for index in range(len(stream)):
        inputs, targets = (t.to(device) for t in stream.batch(index))
        nlls = []
        for k, model in enumerate(models):
            nll, states[k] = model(inputs, states[k], targets)
            nlls.append(nll)
        total += float(mixture_nll(nlls).sum())
        count += targets.numel()
    for model, training in zip(models, was_training, strict=True):
        model.train(training)
    if count == 0:
        raise CorpusError("the evaluation text is too short to evaluate")
    return total / count, count
