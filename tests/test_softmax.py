"""The two-level softmax: a normalised distribution, a cheap loss equal to the full one, every consumer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from lstmtext.config import ModelConfig
from lstmtext.core.inference import InferenceStep
from lstmtext.core.model import LanguageModel
from lstmtext.core.softmax import TwoLevelSoftmax
from lstmtext.errors import CheckpointError, ConfigError
from lstmtext.runs.average import average_checkpoints
from lstmtext.runs.checkpoint import load_checkpoint

from .conftest import TINY_TRAIN_ARGS, run_cli

VOCAB = 50


def two_level_model(cutoff: int = 12, tie: bool = True, numbered_by_frequency: bool = False) -> LanguageModel:
    torch.manual_seed(3)
    config = ModelConfig(
        vocab_size=VOCAB,
        embedding_dim=16,
        hidden_size=16,
        num_layers=2,
        tie_weights=tie,
        softmax_cutoff=cutoff,
    )
    model = LanguageModel(config)
    # Counts in no particular id order, so the frequency order is a real permutation; or, as a
    # word-level tokenizer numbers words, by falling count after a never-seen special at id 0,
    # so the frequent ids are one run (1 to cutoff) and the rare ones are 0 and the rest.
    counts = torch.randint(0, 1000, (VOCAB,), generator=torch.Generator().manual_seed(4))
    if numbered_by_frequency:
        counts = torch.cat([torch.zeros(1, dtype=counts.dtype), counts[1:].sort(descending=True).values])
    model.set_output_prior(counts)
    with torch.no_grad():  # a cluster unit that depends on the input, not only its start bias
        model.two_level.cluster.weight.normal_()
    return model


def test_frequency_order_ranks_tokens_by_count_ties_by_id() -> None:
    softmax = TwoLevelSoftmax(hidden_size=4, vocab_size=6, cutoff=2)
    softmax.set_frequencies(torch.tensor([5, 0, 9, 5, 1, 9]))
    assert softmax.frequency_order.tolist() == [2, 5, 0, 3, 4, 1]
    # The cluster starts at the share of the rare tokens (ids 0, 3, 4, 1; counts + 0.1 smoothing).
    expected = torch.log(torch.tensor((5 + 5 + 1 + 0 + 0.4) / (29 + 0.6)))
    torch.testing.assert_close(softmax.cluster.bias[0], expected)


def test_log_probs_are_a_distribution_over_the_whole_vocabulary() -> None:
    model = two_level_model().eval()
    ids = torch.randint(0, VOCAB, (3, 9), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        log_probs, _ = model(ids)
    assert log_probs.shape == (3, 9, VOCAB)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(3, 9))
    # Not a plain softmax of the head's logits: the cluster token carries the rare tokens' mass.
    with torch.no_grad():
        plain = model.head(model.core(ids)[0]).log_softmax(-1)
    assert (plain - log_probs).abs().max() > 1e-3


@pytest.mark.parametrize("numbered_by_frequency", [False, True])
@pytest.mark.parametrize("tie", [True, False])
def test_cheap_loss_and_gradients_equal_the_full_distribution(tie: bool, numbered_by_frequency: bool) -> None:
    ids = torch.randint(0, VOCAB, (4, 11), generator=torch.Generator().manual_seed(6))
    inputs, targets = ids[:, :-1], ids[:, 1:]
    cheap_model, full_model = (
        two_level_model(tie=tie, numbered_by_frequency=numbered_by_frequency).eval() for _ in range(2)
    )
    if numbered_by_frequency:
        assert sorted(cheap_model.two_level.frequency_order[:12].tolist()) == list(range(1, 13))
    nll, _ = cheap_model(inputs, targets=targets)
    log_probs, _ = full_model(inputs)
    full_nll = -log_probs.gather(-1, targets[..., None])[..., 0]
    assert nll.shape == targets.shape and nll.dtype == torch.float32
    torch.testing.assert_close(nll, full_nll, atol=1e-5, rtol=1e-5)
    # Both frequent and rare targets occur, so both branches of the loss were exercised.
    rank = torch.argsort(cheap_model.two_level.frequency_order)[targets]
    assert (rank < 12).any() and (rank >= 12).any()
    nll.sum().backward()
    full_nll.sum().backward()
    for (name, cheap), (_, full) in zip(
        cheap_model.named_parameters(), full_model.named_parameters(), strict=True
    ):
        torch.testing.assert_close(cheap.grad, full.grad, atol=1e-5, rtol=1e-5, msg=name)


def test_full_softmax_model_loss_is_the_cross_entropy() -> None:
    torch.manual_seed(0)
    model = LanguageModel(ModelConfig(vocab_size=VOCAB, embedding_dim=8, hidden_size=16)).eval()
    ids = torch.randint(0, VOCAB, (2, 8))
    nll, _ = model(ids[:, :-1], targets=ids[:, 1:])
    logits, _ = model(ids[:, :-1])
    expected = torch.nn.functional.cross_entropy(
        logits.reshape(-1, VOCAB), ids[:, 1:].reshape(-1), reduction="none"
    )
    torch.testing.assert_close(nll.reshape(-1), expected)


def test_fast_inference_step_and_prime_give_the_models_log_probs() -> None:
    model = two_level_model().eval()
    ids = torch.randint(0, VOCAB, (3, 14), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected, _ = model(ids)
    step = InferenceStep(model)
    state = step.new_state(3)
    logits = [step.prime(ids[:, :6], state)]
    logits += [step.step(ids[:, t], state).clone() for t in range(6, 14)]
    torch.testing.assert_close(torch.stack(logits, dim=1), expected[:, 5:], atol=1e-5, rtol=1e-5)


def test_suppressed_tokens_are_renormalised_the_same_in_prime_and_step() -> None:
    model = two_level_model().eval()
    rare_token = int(model.two_level.frequency_order[-1])
    frequent_token = int(model.two_level.frequency_order[0])
    step = InferenceStep(model)
    step.suppress([rare_token, frequent_token])
    ids = torch.randint(0, VOCAB, (2, 5), generator=torch.Generator().manual_seed(8))
    primed = step.prime(ids, step.new_state(2)).clone()
    state = step.new_state(2)
    for t in range(5):
        stepped = step.step(ids[:, t], state)
    for logits in (primed, stepped):
        assert torch.isneginf(logits[:, [rare_token, frequent_token]]).all()
    torch.testing.assert_close(primed.softmax(-1), stepped.softmax(-1), atol=1e-5, rtol=1e-5)


def test_every_rare_token_suppressed_leaves_no_nan() -> None:
    model = two_level_model().eval()
    step = InferenceStep(model)
    step.suppress(model.two_level.frequency_order[12:].tolist())
    logits = step.step(torch.tensor([1, 2]), step.new_state(2))
    assert not logits.isnan().any()
    probs = logits.softmax(-1)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))
    assert probs[:, model.two_level.frequency_order[12:]].max() == 0


def test_cutoff_must_leave_rare_tokens() -> None:
    with pytest.raises(ConfigError, match="softmax cutoff"):
        ModelConfig(vocab_size=10, softmax_cutoff=10)
    with pytest.raises(ConfigError, match="softmax cutoff"):
        ModelConfig(vocab_size=10, softmax_cutoff=-1)


WORDS = ("the cat sat on the mat and the dog ate the cat food while a bird sang " * 30).strip()


@pytest.fixture(scope="module")
def two_level_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny word-level run with a two-level softmax, trained once; its corpus is words.txt beside it."""
    root = tmp_path_factory.mktemp("two_level")
    corpus = root / "words.txt"
    corpus.write_text((WORDS + "\n") * 4, encoding="utf-8")
    run = root / "run"
    args = [
        "train",
        str(corpus),
        "--level",
        "word",
        "--out",
        str(run),
        "--softmax-cutoff",
        "4",
        "--tie-weights",
    ]
    result = run_cli([*args, *TINY_TRAIN_ARGS, "--embed", "16"])
    assert result.exit_code == 0, result.stderr
    return run


def test_cli_trains_evaluates_generates_and_reports_a_two_level_model(
    cli, two_level_run: Path, tmp_path: Path
) -> None:
    assert json.loads((two_level_run / "config.json").read_text())["model"]["softmax_cutoff"] == 4
    summary = json.loads(cli(["info", str(two_level_run), "--json"]).stdout)
    assert summary["softmax_cutoff"] == 4
    checkpoint = load_checkpoint(two_level_run, task="lm")
    order = checkpoint.model.two_level.frequency_order
    assert checkpoint.tokenizer.decode([int(order[0])]).strip() == "the"  # the most frequent word
    corpus = two_level_run.parent / "words.txt"
    metrics = json.loads(cli(["evaluate", "--model", str(two_level_run), str(corpus), "--json"]).stdout)
    best_val = json.loads((two_level_run / "best.json").read_text())
    assert metrics["loss"] < 2.5, (metrics, best_val)
    result = cli(["generate", "--model", str(two_level_run), "--length", "12", "--random-state", "1"])
    assert result.exit_code == 0 and result.stdout.strip(), result.stderr
    result = cli(["generate", "--model", str(two_level_run), "--beam", "3", "--length", "6"])
    assert result.exit_code == 0 and result.stdout.strip(), result.stderr
    result = cli(["inspect", "-m", str(two_level_run), "--text", "the cat sat on the", "--json"])
    assert result.exit_code == 0, result.stderr
    predictions = json.loads(result.stdout)["predictions"]
    assert predictions and 0 < sum(p["probability"] for p in predictions) <= 1 + 1e-6
    result = cli(["train", str(corpus), "--out", str(tmp_path / "char"), "--softmax-cutoff", "5000"])
    assert result.exit_code != 0 and "softmax cutoff" in result.stderr
    result = cli(["train", str(corpus), "--out", str(tmp_path / "neg"), "--softmax-cutoff", "-1"])
    assert result.exit_code != 0 and "softmax cutoff" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_frequency_order_that_is_no_permutation_is_a_checkpoint_error(
    two_level_run: Path, tmp_path: Path
) -> None:
    run = Path(shutil.copytree(two_level_run, tmp_path / "run"))
    weights = run / "model.safetensors"
    state = load_file(weights)
    state["two_level.frequency_order"] = torch.zeros_like(state["two_level.frequency_order"])
    save_file(state, weights)
    with pytest.raises(CheckpointError, match="permutation"):
        load_checkpoint(run, task="lm")


def test_averaging_keeps_the_frequency_order_and_refuses_two_orders(
    two_level_run: Path, tmp_path: Path
) -> None:
    steps = sorted((two_level_run / "checkpoints").glob("step-*"))
    averaged = average_checkpoints([two_level_run, *steps]).model
    order = load_checkpoint(two_level_run).model.two_level.frequency_order
    assert torch.equal(averaged.two_level.frequency_order, order)
    other = tmp_path / "other"
    shutil.copytree(steps[-1], other)
    state = load_file(other / "model.safetensors")
    state["two_level.frequency_order"] = state["two_level.frequency_order"].flip(0).contiguous()
    save_file(state, other / "model.safetensors")
    with pytest.raises(CheckpointError, match="frequency_order"):
        average_checkpoints([two_level_run, other])
