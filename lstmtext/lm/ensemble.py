"""Language-model ensembles: the mixture of several models' next-token distributions.

p(y | x) = (1/K) * sum_k p_k(y | x), each model reading the text with its own carried state.
Models trained apart err on different tokens, so the mixture's loss usually falls below
each member's; by Jensen's inequality it is never above their mean loss. train.evaluate_stream
reads a stream with several models and scores their mixture through mixture_nll.

Three things in lstmtext average; this module is the third, for language models:
- weight_ema: one run's weights, averaged over its training steps as it trains (`--ema`);
- checkpoint_average: saved checkpoints' weights, averaged after training (`lstmtext average`);
- lm_ensemble and classify.Ensemble: several models' predicted probabilities, the weights
  untouched (`--model` given more than once).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lstmtext.errors import ConfigError
from lstmtext.runs.checkpoint import Checkpoint


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
