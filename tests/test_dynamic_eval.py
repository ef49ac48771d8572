"""Dynamic evaluation: each segment scored before the model learns from it; it helps on text that
repeats; the model is left as it was."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmtext.config import ModelConfig
from lstmtext.core.model import LanguageModel
from lstmtext.data.corpus import TokenStream
from lstmtext.errors import ConfigError
from lstmtext.lm.api import evaluate_language_model
from lstmtext.lm.dynamic_eval import DynamicEvaluation, dynamic_nll
from lstmtext.lm.task import evaluate_stream

VOCAB = 30


def small_model(cutoff: int = 0) -> LanguageModel:
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=VOCAB, embedding_dim=8, hidden_size=16, num_layers=2, dropout=0.3, softmax_cutoff=cutoff
    )
    return LanguageModel(config)


def random_ids(length: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, VOCAB, length).astype(np.uint16)


def test_a_tiny_rate_scores_as_the_static_evaluation() -> None:
    model = small_model()
    stream = TokenStream(random_ids(400, 1), batch_size=2, seq_len=10)
    static, count = evaluate_stream(model, stream, torch.device("cpu"))
    nll = dynamic_nll(model, stream, torch.device("cpu"), DynamicEvaluation(learning_rate=1e-12))
    assert nll.shape == (2, 199) and nll.numel() == count
    assert float(nll.double().mean()) == pytest.approx(static, abs=1e-6)


@pytest.mark.parametrize("cutoff", [0, 10])
def test_every_token_is_scored_before_the_model_learns_from_it(cutoff: int) -> None:
    """Changing the text from position k on leaves every score before k as it was: no
    token's score depends on the token itself or on anything after it."""
    model = small_model(cutoff)
    if cutoff:
        model.set_output_prior(torch.arange(VOCAB) + 1)
    config = DynamicEvaluation(learning_rate=0.5, decay=0.01)
    text = random_ids(300, 2)
    changed = text.copy()
    changed[155:] = random_ids(145, 3)
    device = torch.device("cpu")
    before = dynamic_nll(model, TokenStream(text, 1, 10), device, config)[0]
    after = dynamic_nll(model, TokenStream(changed, 1, 10), device, config)[0]
    # Target j of the row is token j + 1: scores 0..153 predict tokens 1..154, all unchanged.
    torch.testing.assert_close(before[:154], after[:154], rtol=0, atol=0)
    assert not torch.equal(before[154:], after[154:])


def test_it_learns_a_text_that_repeats_and_leaves_the_weights_as_trained() -> None:
    model = small_model()
    trained = {name: p.detach().clone() for name, p in model.state_dict().items()}
    phrase = random_ids(8, 4)
    stream = TokenStream(np.tile(phrase, 100), batch_size=1, seq_len=10)
    static, _ = evaluate_stream(model, stream, torch.device("cpu"))
    nll = dynamic_nll(model, stream, torch.device("cpu"), DynamicEvaluation(learning_rate=2.0))
    # The untrained model cannot know the phrase; by its hundredth reading it has learned it.
    assert float(nll[0, -40:].mean()) < 0.1 * static
    assert float(nll.mean()) < static
    for name, value in model.state_dict().items():
        assert torch.equal(value, trained[name]), name
    assert model.training  # put back in the mode it came in


def test_rate_and_decay_are_checked() -> None:
    with pytest.raises(ConfigError):
        DynamicEvaluation(learning_rate=0.0)
    with pytest.raises(ConfigError):
        DynamicEvaluation(learning_rate=0.1, decay=1.0)


def test_cli_dynamic_evaluation(cli, tiny_lm: Path, tmp_path: Path) -> None:
    text = tmp_path / "refrain.txt"
    text.write_text("or not to be, " * 60, encoding="utf-8")
    static = cli(["evaluate", "--model", str(tiny_lm), str(text), "--json", "--batch-size", "1"])
    dynamic = cli(["evaluate", "--model", str(tiny_lm), str(text), "--json", "--dynamic-lr", "1"])
    assert static.exit_code == 0 and dynamic.exit_code == 0, dynamic.stderr
    static_metrics, dynamic_metrics = json.loads(static.stdout), json.loads(dynamic.stdout)
    assert dynamic_metrics["tokens"] == static_metrics["tokens"]
    # A refrain the tiny model has never seen alone: reading it, the model picks it up.
    assert dynamic_metrics["loss"] < 0.9 * static_metrics["loss"]
    # The checkpoint on disk is not changed by it.
    again = evaluate_language_model(tiny_lm, [str(text)], batch_size=1, seq_len=20)
    assert again.loss == pytest.approx(static_metrics["loss"], abs=1e-5)


def test_cli_refuses_a_decay_without_a_rate(cli, tiny_lm: Path, tiny_corpus: Path) -> None:
    result = cli(["evaluate", "--model", str(tiny_lm), str(tiny_corpus), "--dynamic-decay", "0.1"])
    assert result.exit_code != 0
    assert "--dynamic-lr" in result.stderr and "Traceback" not in result.stderr
