"""Language-model ensembles: the mixture's arithmetic, its loss through evaluate, and refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from lstmtext.config import ModelConfig
from lstmtext.data.corpus import TokenStream
from lstmtext.errors import ConfigError
from lstmtext.lm.api import evaluate_language_model
from lstmtext.lm.ensemble import mixture_nll
from lstmtext.lm.task import evaluate_stream
from lstmtext.runs.checkpoint import load_checkpoint

from .conftest import TINY_TEXT, random_checkpoint, tiny_tokenizer


@pytest.fixture(scope="module")
def second_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another model on the tiny LM's tokenizer: its shape, random weights."""
    shape = ModelConfig(tiny_tokenizer().vocab_size, embedding_dim=8, hidden_size=16, num_layers=2)
    return random_checkpoint(tmp_path_factory.mktemp("second_lm"), shape, seed=8)


def test_the_mixture_is_minus_log_of_the_mean_probability() -> None:
    p = torch.tensor([[0.5, 0.1], [0.2, 0.9]])  # two members, two tokens
    expected = -torch.log(p.mean(dim=0))
    torch.testing.assert_close(mixture_nll([-torch.log(p[0]), -torch.log(p[1])]), expected)
    alone = -torch.log(p[0])
    torch.testing.assert_close(mixture_nll([alone, alone]), alone)  # a model with itself


def test_the_ensemble_loss_matches_a_hand_mixture_of_the_members_distributions(
    tiny_lm: Path, second_lm: Path
) -> None:
    members = [load_checkpoint(d, task="lm").model for d in (tiny_lm, second_lm)]
    tokenizer = load_checkpoint(tiny_lm, task="lm").tokenizer
    ids = tokenizer.encode_array(TINY_TEXT[:300])
    stream = TokenStream(ids, 2, 32)
    loss, count = evaluate_stream(members, stream, torch.device("cpu"))
    # By hand: each member's softmax over the whole stream with its state carried, then mixed.
    total = 0.0
    with torch.no_grad():
        states = [m.core.initial_state(2) for m in members]
        for x, y in stream:
            probabilities = []
            for k, m in enumerate(members):
                m.eval()
                logits, states[k] = m(x, states[k])
                probabilities.append(torch.softmax(logits.float(), -1).gather(-1, y.unsqueeze(-1)))
            total += float(-torch.log((probabilities[0] + probabilities[1]) / 2).sum())
    assert count == 2 * ((len(ids) // 2) - 1)
    assert loss == pytest.approx(total / count, abs=1e-5)


def test_evaluate_takes_several_models_and_the_mixture_beats_their_mean(
    cli, tiny_lm: Path, second_lm: Path, tiny_corpus: Path
) -> None:
    alone = [evaluate_language_model(d, [str(tiny_corpus)]).loss for d in (tiny_lm, second_lm)]
    both = evaluate_language_model([tiny_lm, second_lm], [str(tiny_corpus)])
    assert both.loss <= sum(alone) / 2 + 1e-6  # Jensen
    assert both.loss != pytest.approx(alone[0], abs=1e-4)
    assert both.perplexity == pytest.approx(math.exp(both.loss))
    same = evaluate_language_model([tiny_lm, tiny_lm], [str(tiny_corpus)])
    assert same.loss == pytest.approx(alone[0], abs=1e-5)
    result = cli(["evaluate", "--model", str(tiny_lm), "--model", str(second_lm), str(tiny_corpus), "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["loss"] == pytest.approx(both.loss, abs=1e-6)


def test_an_ensemble_needs_one_tokenizer_and_no_dynamic_evaluation(
    cli, tiny_lm: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    tokenizer = tiny_tokenizer(text="zyxwvu 0123456789 ")
    shape = ModelConfig(tokenizer.vocab_size, embedding_dim=8, hidden_size=16, num_layers=2)
    other = random_checkpoint(tmp_path / "other", shape, tokenizer)
    result = cli(["evaluate", "--model", str(tiny_lm), "--model", str(other), str(tiny_corpus)])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "another tokenizer" in result.stderr
    with pytest.raises(ConfigError, match="adapts one model"):
        from lstmtext.lm.dynamic_eval import DynamicEvaluation

        evaluate_language_model([tiny_lm, tiny_lm], [str(tiny_corpus)], dynamic=DynamicEvaluation(0.1, 0.0))
