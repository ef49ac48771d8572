"""A two-level softmax over a large vocabulary: the cheap language-model head of word and BPE models.

The `cutoff` most frequent tokens and one cluster token share the first softmax; the other
tokens share a second softmax, reached through the cluster token:

    P(w) = softmax([z_frequent, c])_w                          w among the frequent tokens
    P(w) = softmax([z_frequent, c])_cluster * softmax(z_rare)_w   otherwise

z = W h + b are the usual head logits (W may be the tied embedding) and c = u.h + a the
cluster's. It is a normalised distribution over the whole vocabulary (Goodman 2001; the
adaptive softmax of Grave et al. 2017 with one tail cluster at full width), so its
cross-entropy and perplexity compare with a full softmax's. Training needs the rare tokens'
logits only at the positions whose target is rare: on Penn Treebank the 1,000 most frequent
words cover 79 % of the tokens, so the head does about 0.29 of a full softmax's arithmetic.

Tokens are ranked by their count in the training text (`set_frequencies`); the order is a
buffer, saved with the weights.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TwoLevelSoftmax(nn.Module):
    def __init__(self, hidden_size: int, vocab_size: int, cutoff: int) -> None:
        super().__init__()
        if not 1 <= cutoff < vocab_size:
            raise ValueError(f"softmax cutoff must be in [1, {vocab_size}), not {cutoff}")
        self.cutoff = cutoff
        self.cluster = nn.Linear(hidden_size, 1)
        # Token ids, most frequent first. Until set_frequencies, the ids' own order.
        self.register_buffer("frequency_order", torch.arange(vocab_size))

    @torch.no_grad()
    def set_frequencies(self, token_counts: Tensor) -> None:
        """Rank tokens by count (ties by id) and start the cluster bias at the rare tokens' share."""
        counts = token_counts.to(torch.float64).cpu()
        # stable sort on -count: equal counts keep the lower id first, a deterministic order
        order = torch.sort(-counts, stable=True).indices
        self.frequency_order.copy_(order.to(self.frequency_order.device))
        smoothed = counts + 0.1
        rare_share = smoothed[order[self.cutoff :]].sum() / smoothed.sum()
        self.cluster.weight.zero_()
        self.cluster.bias.fill_(float(torch.log(rare_share)))

    def check(self) -> None:
        """Raise ValueError unless the loaded order is a permutation of the vocabulary."""
        order = self.frequency_order
        expected = torch.arange(order.numel(), device=order.device)
        if order.dtype != torch.int64 or not torch.equal(torch.sort(order).values, expected):
            raise ValueError("frequency_order is not a permutation of the vocabulary")

    def _split(self) -> tuple[Tensor, Tensor]:
        return self.frequency_order[: self.cutoff], self.frequency_order[self.cutoff :]

    def log_probs(self, logits: Tensor, outputs: Tensor) -> Tensor:
        """Full log P (..., V) from the head logits z (..., V) and the outputs h (..., H).

        A softmax of the result gives the two-level distribution back, so callers that take
        softmax(logits) (sampling, beam search, inspection) need no other change.
        """
        frequent, rare = self._split()
        logits = logits.float()
        first = torch.cat([logits[..., frequent], self.cluster(outputs).float()], dim=-1)
        first = first.log_softmax(dim=-1)
        result = torch.empty_like(logits)
        result[..., frequent] = first[..., :-1]
        result[..., rare] = first[..., -1:] + logits[..., rare].log_softmax(dim=-1)
        # A row whose rare tokens are all -inf (suppressed) gives nan there: they are impossible.
        return result.masked_fill_(result.isnan(), float("-inf"))

    def negative_log_likelihood(self, head: nn.Linear, outputs: Tensor, targets: Tensor) -> Tensor:
        """-log P(target) per position, fp32 (N,), from outputs (N, H) and targets (N,).

        The rare tokens' logits are computed only for the rows whose target is rare.
        """
        frequent, rare = self._split()
        rank = torch.empty_like(self.frequency_order)
        rank[self.frequency_order] = torch.arange(rank.numel(), device=rank.device)
        target_rank = rank[targets]
        is_rare = target_rank >= self.cutoff
        first = torch.cat(
            [
                nn.functional.linear(outputs, head.weight[frequent], head.bias[frequent]),
                self.cluster(outputs),
            ],
            dim=-1,
        ).float()
        first_target = torch.where(is_rare, self.cutoff, target_rank)
        nll = nn.functional.cross_entropy(first, first_target, reduction="none")
        rows = is_rare.nonzero().squeeze(1)
        if rows.numel():
            rare_logits = nn.functional.linear(outputs[rows], head.weight[rare], head.bias[rare])
            rare_nll = nn.functional.cross_entropy(
                rare_logits.float(), target_rank[rows] - self.cutoff, reduction="none"
            )
            nll = nll.index_add(0, rows, rare_nll)
        return nll
