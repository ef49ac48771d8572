"""Sampling on fixed logits: the kept token sets, greedy limits, reproducibility, distribution."""

from __future__ import annotations

import math

import pytest
import torch

from lstmtext.errors import ConfigError
from lstmtext.lm.sample import check_sampling, filter_logits, make_generator, sample_next

# Probabilities 0.05 .. 0.5, shuffled so that position and rank differ.
PROBS = torch.tensor([0.15, 0.05, 0.5, 0.1, 0.2])
LOGITS = PROBS.log()[None, :]  # (1, 5)


def kept(logits: torch.Tensor) -> set[int]:
    return set(torch.nonzero(torch.isfinite(logits[0])).flatten().tolist())


@pytest.mark.parametrize(
    ("k", "expected"), [(1, {2}), (2, {2, 4}), (3, {0, 2, 4}), (5, {0, 1, 2, 3, 4}), (9, {0, 1, 2, 3, 4})]
)
def test_top_k_keeps_exactly_the_k_highest(k: int, expected: set[int]) -> None:
    assert kept(filter_logits(LOGITS, top_k=k)) == expected


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (0.3, {2}),  # the top token alone holds 0.5
        (0.6, {2, 4}),  # 0.5 < 0.6 <= 0.7
        (0.8, {0, 2, 4}),  # 0.7 < 0.8 <= 0.85
        (0.9, {0, 2, 3, 4}),  # 0.85 < 0.9 <= 0.95
        (0.99, {0, 1, 2, 3, 4}),
        (1.0, {0, 1, 2, 3, 4}),
    ],
)
def test_top_p_keeps_the_smallest_set_reaching_p(p: float, expected: set[int]) -> None:
    assert kept(filter_logits(LOGITS, top_p=p)) == expected


def test_top_p_always_keeps_the_most_likely_token() -> None:
    assert kept(filter_logits(LOGITS, top_p=1e-9)) == {2}


def test_top_k_then_top_p_work_on_the_renormalised_set() -> None:
    # top-k 3 leaves 0.5, 0.2, 0.15 -> renormalised 0.588, 0.235, 0.176; p = 0.7 needs two.
    assert kept(filter_logits(LOGITS, top_k=3, top_p=0.7)) == {2, 4}


def test_filters_work_row_by_row() -> None:
    logits = torch.stack([LOGITS[0], LOGITS[0].flip(0)])  # (2, 5)
    filtered = filter_logits(logits, top_k=2)
    assert kept(filtered[0:1]) == {2, 4}
    assert kept(filtered[1:2]) == {0, 2}


def test_sampling_never_leaves_the_kept_set() -> None:
    generator = make_generator(0)
    logits = LOGITS.expand(4000, -1)
    ids = sample_next(logits, generator=generator, top_k=2)
    assert set(ids.tolist()) == {2, 4}
    ids = sample_next(logits, generator=generator, top_p=0.8)
    assert set(ids.tolist()) == {0, 2, 4}


def test_samples_follow_the_distribution() -> None:
    ids = sample_next(LOGITS.expand(40000, -1), generator=make_generator(1))
    frequencies = torch.bincount(ids, minlength=5).float() / len(ids)
    assert torch.allclose(frequencies, PROBS, atol=0.01)


def test_temperature_sharpens_and_flattens() -> None:
    generator = make_generator(2)
    cold = sample_next(LOGITS.expand(20000, -1), generator=generator, temperature=0.5)
    hot = sample_next(LOGITS.expand(20000, -1), generator=generator, temperature=2.0)
    top_cold = (cold == 2).float().mean().item()
    top_hot = (hot == 2).float().mean().item()
    expected_cold = 0.25 / float((PROBS**2).sum())  # p^(1/T) renormalised
    assert top_cold == pytest.approx(expected_cold, abs=0.015)
    assert top_hot < 0.5 < top_cold


def test_temperature_towards_zero_equals_greedy() -> None:
    logits = torch.randn(64, 50, generator=torch.Generator().manual_seed(3))
    greedy = sample_next(logits, generator=None, greedy=True)
    assert torch.equal(greedy, logits.argmax(dim=-1))
    assert torch.equal(sample_next(logits, generator=None, temperature=0.0), greedy)
    for seed in range(3):
        assert torch.equal(sample_next(logits, generator=make_generator(seed), temperature=1e-4), greedy)


def test_same_random_state_same_samples() -> None:
    logits = torch.randn(8, 30, generator=torch.Generator().manual_seed(4))

    def draws(seed: int) -> list[torch.Tensor]:
        generator = make_generator(seed)
        return [sample_next(logits, generator=generator, top_p=0.9) for _ in range(5)]

    first, again, other = draws(5), draws(5), draws(6)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_suppressed_tokens_are_never_sampled() -> None:
    logits = torch.zeros(1000, 4)
    logits[:, 1] = -math.inf
    assert 1 not in set(sample_next(logits, generator=make_generator(7)).tolist())


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p"),
    [(-0.1, None, None), (float("nan"), None, None), (1.0, 0, None), (1.0, None, 0.0), (1.0, None, 1.5)],
)
def test_nonsense_values_are_config_errors(
    temperature: float, top_k: int | None, top_p: float | None
) -> None:
    with pytest.raises(ConfigError):
        check_sampling(temperature, top_k, top_p)
