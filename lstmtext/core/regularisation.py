"""AWD-LSTM's regularisers for the recurrent core (Merity et al. 2017, salesforce/awd-lstm-lm).

- Locked (variational) dropout: one mask per sequence and unit, the same at every time
  step (Gal & Ghahramani 2016), on the embeddings, between layers and on the top output.
  An element-wise mask redrawn at each step lets a unit's information through at some steps
  and not others; a locked one removes the unit for the whole sequence.
- Weight drop (DropConnect on the hidden-to-hidden matrices U): the recurrence itself is
  regularised, which dropout on the activations between layers never touches. One mask per
  forward pass, shared by the batch, so the fused kernels still run on a plain matrix.
- AR and TAR (ActivationPenalty): penalties on the top layer's outputs, added to the
  training objective of a language model.

All act only in training; in evaluation the core is the plain LSTM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn


def random_keep(shape: tuple[int, ...], p: float, like: Tensor) -> Tensor:
    """A {0, 1/(1-p)} mask of `shape` in `like`'s dtype and device.

    Each element keeps with probability 1 - p, p rounded to a multiple of 1/65536, and the
    kept ones are scaled by the inverse of that rounded keep rate, so the mask's mean is
    exactly 1. Four 16-bit draws come out of each 64-bit random integer: on CPU, where
    torch's generator makes one number at a time, this is faster than a torch.rand mask or
    F.dropout's bernoulli (BENCHMARKS.md, "The training step on CPU").
    """
    count = math.prod(shape)
    dropped = round(p * 65536)
    words = torch.empty(-(-count // 4), dtype=torch.int64, device=like.device)
    # (from, to) spans all 64 bits but one value, so every 16-bit quarter is uniform
    bits = words.random_(-(2**63), 2**63 - 1).view(torch.int16)[:count].view(shape)
    keep = bits >= dropped - 32768
    return keep.to(like.dtype) * (65536 / (65536 - dropped))


def locked_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """x (B, T, H) with one dropout mask per (sequence, unit), shared by every time step."""
    if not training or p == 0.0:
        return x
    return x * random_keep((x.shape[0], 1, x.shape[2]), p, x)


def drop_weights(weight: Tensor, p: float, training: bool) -> Tensor:
    """DropConnect: `weight` with a fraction p of its entries zeroed (the rest scaled)."""
    if not training or p == 0.0:
        return weight
    return weight * random_keep(tuple(weight.shape), p, weight)


def element_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Plain dropout, a fresh mask for every element."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return nn.functional.dropout(x, p, training=True)
    return x * random_keep(tuple(x.shape), p, x)


@dataclass(frozen=True)
class ActivationPenalty:
    """AR and TAR (Merity et al. 2017, section 4.6) on the top layer's outputs h_t.

    AR, `activation` * mean(m * h_t)^2 over the dropped outputs m * h_t, keeps the
    activations small; TAR, `temporal` * mean(h_t - h_{t-1})^2 over the outputs before
    dropout, keeps them from jumping between time steps. Training loss only: the reported
    losses stay the plain cross-entropy. AWD-LSTM's word-level values: 2 and 1.
    """

    activation: float = 0.0
    temporal: float = 0.0

    @property
    def active(self) -> bool:
        return self.activation > 0 or self.temporal > 0

    def __call__(self, raw: Tensor, dropped: Tensor) -> Tensor:
        """raw and dropped (B, T, H): the top layer's outputs before and after dropout."""
        total = raw.new_zeros((), dtype=torch.float32)
        if self.activation > 0:
            total = total + self.activation * dropped.float().pow(2).mean()
        if self.temporal > 0 and raw.shape[1] > 1:
            total = total + self.temporal * (raw[:, 1:] - raw[:, :-1]).float().pow(2).mean()
        return total
