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
    frequency_order: Tensor  # a buffer: nn.Module's attribute lookup alone would type it Tensor | Module

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

    def _columns(self) -> tuple[Tensor, slice | None, Tensor]:
        """The frequent ids in ascending order; the slice of them when they are one run of ids
        (word-level tokenizers number words by frequency, so they are); and each id's column
        in the first softmax (the cutoff, the cluster's column, for a rare id)."""
        frequent = torch.sort(self.frequency_order[: self.cutoff]).values
        first, last = (int(i) for i in frequent[[0, -1]].tolist())
        run = slice(first, last + 1) if last - first + 1 == self.cutoff else None
        column = torch.full_like(self.frequency_order, self.cutoff)
        column[frequent] = torch.arange(self.cutoff, device=column.device)
        return frequent, run, column

    def negative_log_likelihood(self, head: nn.Linear, outputs: Tensor, targets: Tensor) -> Tensor:
        """-log P(target) per position, fp32 (N,), from outputs (N, H) and targets (N,).

        The second softmax is computed only for the rows whose target is rare, from the whole
        head with the frequent columns masked out: a slice of rows of the weights (or none at
        all) in place of gathers, whose scatter-add backward over the (V, H) matrix cost more
        than the 11 % more columns (Penn Treebank, 2 x 650, bf16: BENCHMARKS.md, "The
        training step on CPU").
        """
        frequent, run, column = self._columns()
        rows_of_frequent = run if run is not None else frequent
        weight, bias = head.weight[rows_of_frequent], head.bias[rows_of_frequent]
        first_target = column[targets]
        is_rare = first_target == self.cutoff
        first = torch.cat([nn.functional.linear(outputs, weight, bias), self.cluster(outputs)], dim=-1)
        first = first.float()
        nll = nn.functional.cross_entropy(first, first_target, reduction="none")
        rows = is_rare.nonzero().squeeze(1)
        if rows.numel():
            rare_logits = nn.functional.linear(outputs[rows], head.weight, head.bias).float()
            rare_logits = rare_logits.masked_fill(column != self.cutoff, float("-inf"))
            rare_nll = nn.functional.cross_entropy(rare_logits, targets[rows], reduction="none")
            nll = nll.index_add(0, rows, rare_nll)
        return nll
