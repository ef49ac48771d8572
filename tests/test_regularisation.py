"""Locked dropout and weight drop (AWD-LSTM): what they drop, and that the fused and the
gate-by-gate paths still compute the same thing under them."""

from __future__ import annotations

import pytest
import torch

from lstmtext.config import ModelConfig, TrainConfig
from lstmtext.core.model import Classifier, LanguageModel
from lstmtext.core.regularisation import ActivationPenalty, drop_weights, locked_dropout, random_keep
from lstmtext.errors import ConfigError

TOLERANCE = 1e-5


def regularised_model(**options) -> LanguageModel:
    torch.manual_seed(0)
    config = dict(vocab_size=17, embedding_dim=9, hidden_size=9, num_layers=3, dropout=0.3, tie_weights=True)
    config.update(options)
    return LanguageModel(ModelConfig(**config))


def test_locked_dropout_mask_is_the_same_at_every_time_step() -> None:
    torch.manual_seed(0)
    y = locked_dropout(torch.ones(8, 50, 40), 0.4, training=True)
    dropped = y == 0  # (B, T, H)
    assert torch.equal(dropped, dropped[:, :1].expand_as(dropped))  # a unit is out for the whole sequence
    assert 0.3 < dropped[:, 0].float().mean().item() < 0.5
    assert abs(y.mean().item() - 1.0) < 0.1
    assert not torch.equal(dropped[0], dropped[1])  # but each sequence has its own mask
    assert locked_dropout(y, 0.4, training=False) is y


@pytest.mark.parametrize("p", [0.05, 0.3, 0.45, 0.9])
def test_random_keep_drops_a_fraction_p_and_keeps_the_mean(p: float) -> None:
    torch.manual_seed(0)
    mask = random_keep((300, 7, 501), p, torch.zeros(1, dtype=torch.bfloat16))
    assert mask.shape == (300, 7, 501) and mask.dtype == torch.bfloat16
    dropped = (mask == 0).float().mean().item()
    assert abs(dropped - p) < 0.005
    zero, scale = mask.unique().tolist()
    assert zero == 0.0 and scale == pytest.approx(1 / (1 - p), rel=1e-2)
    assert abs(mask.float().mean().item() - 1.0) < 0.01
    # Every position is drawn on its own: neighbours (which share a 64-bit word) agree only by chance.
    flat = (mask.flatten() == 0).float()
    agreement = (flat[0::4] == flat[1::4]).float().mean().item()
    assert abs(agreement - (p * p + (1 - p) * (1 - p))) < 0.01


def test_dropout_between_layers_acts_in_training_on_cpu() -> None:
    """On CPU the layers run one call each in training, the dropout between them done by
    random_keep: with no embedding dropout, the top layer's raw outputs differ from
    evaluation's only through it."""
    model = regularised_model(num_layers=2, dropout=0.5, embedding_dropout=0.0)
    ids = torch.randint(0, 17, (4, 6))
    model.eval()
    _, evaluated, _ = model.core.run(ids)
    model.train()
    _, trained, _ = model.core.run(ids)
    assert (trained - evaluated).abs().max() > 1e-3
    one_layer = regularised_model(num_layers=1, dropout=0.5, embedding_dropout=0.0)
    _, evaluated, _ = one_layer.eval().core.run(ids)
    _, trained, _ = one_layer.train().core.run(ids)
    torch.testing.assert_close(trained, evaluated)  # nothing between layers to drop


def test_weight_drop_zeroes_entries_of_the_matrix_only_in_training() -> None:
    torch.manual_seed(0)
    weight = torch.ones(400, 100, requires_grad=True)
    dropped = drop_weights(weight, 0.5, training=True)
    assert abs((dropped == 0).float().mean().item() - 0.5) < 0.02
    dropped.sum().backward()
    assert torch.equal(weight.grad, dropped.detach())  # gradient reaches the kept entries only
    assert drop_weights(weight, 0.5, training=False) is weight


@pytest.mark.parametrize("locked,weight_drop", [(False, 0.0), (True, 0.0), (False, 0.5), (True, 0.5)])
def test_fused_and_cell_agree_in_training_under_the_regularisers(locked: bool, weight_drop: float) -> None:
    model = regularised_model(locked_dropout=locked, weight_drop=weight_drop, embedding_dropout=0.2)
    model.train()
    ids = torch.randint(0, 17, (4, 6))
    state = (torch.randn(3, 4, 9), torch.randn(3, 4, 9))

    def run(implementation: str) -> list[torch.Tensor]:
        model.zero_grad()
        model.core.implementation = implementation
        torch.manual_seed(5)  # the same masks for both
        logits, (h, c) = model(ids, state)
        (logits.square().mean() + h.sum() * 0.3 + c.sum() * 0.7).backward()
        return [logits.detach(), h.detach(), c.detach()] + [p.grad.clone() for p in model.parameters()]

    fused, cell = run("fused"), run("cell")
    for a, b in zip(fused, cell, strict=True):
        assert (a - b).abs().max() <= TOLERANCE
    torch.manual_seed(6)  # other masks, other numbers: the regularisers are really on
    model.core.implementation = "fused"
    assert (model(ids, state)[0].detach() - fused[0]).abs().max() > 1e-3


def test_regularised_model_evaluates_as_the_plain_lstm() -> None:
    plain = regularised_model()
    regularised = regularised_model(locked_dropout=True, weight_drop=0.5)
    regularised.load_state_dict(plain.state_dict())
    plain.eval()
    regularised.eval()
    ids = torch.randint(0, 17, (2, 5))
    assert torch.equal(plain(ids)[0], regularised(ids)[0])


def test_classifier_trains_under_the_regularisers() -> None:
    torch.manual_seed(0)
    model = Classifier(
        ModelConfig(
            vocab_size=11,
            embedding_dim=6,
            hidden_size=6,
            num_layers=2,
            task="classify",
            num_classes=2,
            locked_dropout=True,
            weight_drop=0.3,
        )
    )
    model.train()
    logits = model(torch.randint(0, 11, (3, 7)), torch.tensor([7, 4, 1]))
    logits.sum().backward()
    assert logits.shape == (3, 2)
    assert model.core.lstm.weight_hh_l1.grad is not None


def test_weight_drop_out_of_range_is_refused() -> None:
    with pytest.raises(ConfigError, match="weight drop"):
        ModelConfig(vocab_size=10, weight_drop=1.0)


def test_activation_penalty_is_ar_on_the_dropped_and_tar_on_the_raw_outputs() -> None:
    raw = torch.tensor([[[1.0, 2.0], [3.0, 2.0], [3.0, -2.0]]])  # (B=1, T=3, H=2)
    dropped = torch.tensor([[[2.0, 0.0], [0.0, 4.0], [6.0, 0.0]]])  # raw under some mask, x2
    # AR: 2 x the mean of the dropped outputs squared, (4 + 16 + 36) / 6; the raw ones do not count.
    ar = ActivationPenalty(activation=2.0)(raw, dropped)
    assert ar.item() == pytest.approx(2.0 * 56 / 6)
    assert ActivationPenalty(activation=2.0)(torch.zeros_like(raw), dropped).item() == ar.item()
    # TAR: the mean squared step of the raw outputs, steps (2, 0) and (0, -4): (4 + 16) / 4.
    tar = ActivationPenalty(temporal=1.0)(raw, dropped)
    assert tar.item() == pytest.approx(5.0)
    assert ActivationPenalty(temporal=1.0)(raw, torch.zeros_like(dropped)).item() == tar.item()
    assert ActivationPenalty(2.0, 1.0)(raw, dropped).item() == pytest.approx(2.0 * 56 / 6 + 5.0)
    assert not ActivationPenalty().active and ActivationPenalty(0.0, 1.0).active
    assert ActivationPenalty(0.0, 1.0)(raw[:, :1], dropped[:, :1]).item() == 0.0  # no step to weigh


@pytest.mark.parametrize("locked", [False, True])
def test_penalised_forward_returns_the_plain_nll_and_a_penalty_with_gradients(locked: bool) -> None:
    model = regularised_model(locked_dropout=locked, dropout=0.0, embedding_dropout=0.0)
    model.train()
    ids, targets = torch.randint(0, 17, (2, 6)), torch.randint(0, 17, (2, 6))
    nll, _ = model(ids, None, targets)
    penalised_nll, _, penalty = model(ids, None, targets, ActivationPenalty(2.0, 1.0))
    assert torch.equal(nll, penalised_nll)  # without dropout both calls see the same network
    outputs, _ = model.core(ids)  # without dropout, the raw and the dropped outputs are these
    expected = ActivationPenalty(2.0, 1.0)(outputs, outputs)
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-5)
    penalty.backward()
    assert model.core.lstm.weight_hh_l2.grad.abs().sum() > 0  # it reaches the recurrence
    assert model.head.bias.grad is None  # and nothing past the core


def test_negative_ar_or_tar_is_refused() -> None:
    with pytest.raises(ConfigError, match="TAR"):
        TrainConfig(temporal_penalty=-1.0)
    with pytest.raises(ConfigError, match="AR"):
        TrainConfig(activation_penalty=-0.5)
