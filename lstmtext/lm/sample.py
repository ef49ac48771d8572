"""Pure sampling: logits in, token ids out, randomness only from an explicit torch.Generator.

Order of the filters, as in Hugging Face `generate`: temperature first, then top-k, then
top-p, all on the tempered distribution. Greedy (or temperature 0) takes the argmax.

Shapes: logits (B, V) -> ids (B,).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lstmtext.errors import ConfigError


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Raise ConfigError for values no sampler can honour."""
    if not 0.0 <= temperature < float("inf"):  # also catches NaN; inf flattens logits into NaN
        raise ConfigError(f"temperature must be a finite number >= 0, not {temperature}")
    if top_k is not None and top_k < 1:
        raise ConfigError(f"top-k must be at least 1, not {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ConfigError(f"top-p must be in (0, 1], not {top_p}")


def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Logits with every token outside the kept set at -inf.

    top-k keeps the k highest logits (exactly k, ties broken by position). top-p keeps the
    smallest set of most likely tokens whose probability reaches p; the most likely token
    is always kept, so the result is never empty.
    """
    if top_k is not None and top_k < logits.shape[-1]:
        kept = torch.zeros_like(logits, dtype=torch.bool)
        kept.scatter_(-1, logits.topk(top_k, dim=-1).indices, True)
        logits = logits.masked_fill(~kept, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # A token is kept when the mass of the tokens ranked above it is still short of p.
        mass_before = probs.cumsum(dim=-1) - probs
        drop_sorted = mass_before >= top_p
        drop_sorted[..., 0] = False
        drop = torch.zeros_like(drop_sorted).scatter_(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(
    logits: Tensor,
    *,
    generator: torch.Generator | None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
) -> Tensor:
    """One token id per row of logits (B, V) -> (B,) int64."""
    if greedy or temperature == 0.0:
        return logits.argmax(dim=-1)
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    probs = filter_logits(logits, top_k, top_p).softmax(dim=-1)
    # argmax(p_i / E_i) with E_i ~ Exp(1) is an exact draw from p (the exponential race),
    # and 2-3x cheaper than torch.multinomial for one sample. The clamp keeps a zero draw
    # from turning 0 / 0 into NaN.
    noise = torch.empty_like(probs).exponential_(generator=generator).clamp_min_(1e-30)
    return probs.div_(noise).argmax(dim=-1)


def make_generator(random_state: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded from `random_state`, or from fresh entropy when it is None."""
    generator = torch.Generator(device=device)
    if random_state is None:
        generator.seed()
    else:
        generator.manual_seed(random_state)
    return generator
