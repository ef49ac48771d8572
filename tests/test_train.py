"""The training loop: it learns, it saves, it resumes exactly, it survives NaN."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lstmtext.config import TokenizerConfig, TrainConfig
from lstmtext.events import TrainEvent
from lstmtext.lm.api import ModelShape, evaluate_language_model, train_language_model
from lstmtext.lm.task import language_model_trainer
from lstmtext.runs.checkpoint import load_checkpoint, read_metrics
from lstmtext.training.optimization import LearningRate

from .conftest import TINY_TEXT

SHAPE = ModelShape(embedding_dim=16, hidden_size=32, num_layers=2, dropout=0.1)


def small_config(**overrides) -> TrainConfig:
    values = dict(
        seq_len=16, batch_size=4, lr=1e-2, eval_every=10, max_steps=30, random_state=3, patience=None
    )
    values.update(overrides)
    return TrainConfig(**values)


def test_overfits_a_tiny_corpus(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("abcdefgh" * 40, encoding="utf-8")
    result = train_language_model(
        [str(corpus)],
        TokenizerConfig("char"),
        ModelShape(embedding_dim=16, hidden_size=64, num_layers=1, dropout=0.0),
        small_config(max_steps=150, lr=2e-2, val_fraction=0.1, eval_every=50),
        tmp_path / "run",
    )
    assert result.last_loss is not None and result.last_loss < 0.05
    assert result.best_val_loss is not None and result.best_val_loss < 0.1


def test_save_then_load_gives_identical_outputs(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    train_language_model(
        [str(corpus)], TokenizerConfig("char"), SHAPE, small_config(max_steps=10), tmp_path / "run"
    )
    first = load_checkpoint(tmp_path / "run")
    second = load_checkpoint(tmp_path / "run")
    ids = torch.tensor([first.tokenizer.encode("To be, or not")])
    assert torch.equal(first.model(ids)[0], second.model(ids)[0])
    assert (tmp_path / "run" / "best.json").exists()
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any(m["kind"] == "eval" for m in metrics)


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    config = small_config(max_steps=25, eval_every=10)
    train_language_model([str(corpus)], TokenizerConfig("char"), SHAPE, config, tmp_path / "whole")

    stop = threading.Event()

    def stop_at_13(event: TrainEvent) -> None:
        if event.step >= 13:
            stop.set()

    interrupted = train_language_model(
        [str(corpus)], TokenizerConfig("char"), SHAPE, config, tmp_path / "split",
        on_event=stop_at_13, stop_event=stop,
    )  # fmt: skip
    assert interrupted.stop_reason == "interrupted" and 13 <= interrupted.steps < 25
    resumed = train_language_model(
        [str(corpus)], TokenizerConfig("char"), SHAPE, config, tmp_path / "split", resume=True
    )
    assert resumed.steps == 25

    a = load_file(tmp_path / "whole" / "checkpoints" / "last" / "model.safetensors")
    b = load_file(tmp_path / "split" / "checkpoints" / "last" / "model.safetensors")
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert losses(tmp_path / "whole") == losses(tmp_path / "split")


def losses(run: Path) -> list[tuple]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["kind"], r["step"], r.get("loss"), r.get("val_loss")) for r in records]


def test_metrics_are_appended_as_they_happen(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"kind": "log", "step": 999}\n')  # an earlier run's
    seen_at_first_log: list[dict] = []

    def on_event(event: TrainEvent) -> None:
        if event.kind == "log" and not seen_at_first_log:
            seen_at_first_log.extend(read_metrics(run))

    # eval_every 40 logs every 10 steps: the first log comes long before the first checkpoint.
    config = small_config(max_steps=40, eval_every=40)
    train_language_model(
        [str(corpus)], TokenizerConfig("char"), SHAPE, config, run, on_event=on_event, overwrite=True
    )
    assert [(m["kind"], m["step"]) for m in seen_at_first_log] == [("log", 10)]
    with open(run / "metrics.jsonl", "a") as handle:
        handle.write('{"kind": "log", "st')  # a line torn by a crash
    records = read_metrics(run)
    assert [m["step"] for m in records if m["kind"] == "log"] == [10, 20, 30, 40]
    assert [m["step"] for m in records if m["kind"] == "eval"] == [40]


def test_nan_loss_rolls_back_to_last_good_checkpoint(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    from lstmtext.config import RunConfig
    from lstmtext.data.tokenizer import TextTokenizer

    tokenizer = TextTokenizer.train([TINY_TEXT], TokenizerConfig("char"))
    ids = tokenizer.encode_array(TINY_TEXT)
    run_config = RunConfig(
        TokenizerConfig("char"), SHAPE.model_config(tokenizer.vocab_size), small_config(max_steps=30)
    )
    events: list[TrainEvent] = []
    trainer = language_model_trainer(
        run_config, tokenizer, ids[:900], ids[900:], tmp_path / "run", on_event=events.append
    )
    real_step = trainer._train_step
    poisoned = {15}

    def flaky_step(batch, lr):
        loss = real_step(batch, lr)
        return float("nan") if trainer.step in poisoned and not poisoned.discard(trainer.step) else loss

    trainer._train_step = flaky_step  # type: ignore[method-assign]
    result = trainer.fit()
    assert result.stop_reason == "finished" and result.steps == 30
    assert any("rolled back to step 10" in e.message for e in events if e.kind == "warning")
    assert np.isfinite(result.last_loss)


def test_evaluate_reports_bits_per_byte(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    train_language_model(
        [str(corpus)], TokenizerConfig("char"), SHAPE, small_config(max_steps=10), tmp_path / "run"
    )
    metrics = evaluate_language_model(tmp_path / "run", [str(corpus)], device="cpu")
    # Char level on ASCII text: one token per byte, so bits per byte equals bits per token.
    assert metrics.bits_per_byte == pytest.approx(metrics.bits_per_token, rel=1e-6)
    assert metrics.perplexity > 1


@pytest.mark.parametrize("level", ["word", "bpe"])
def test_other_levels_train(tmp_path: Path, level: str) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text(TINY_TEXT * 4, encoding="utf-8")
    result = train_language_model(
        [str(corpus)],
        TokenizerConfig(level, vocab_size=300),
        SHAPE,
        small_config(max_steps=10),
        tmp_path / "run",
    )
    assert result.steps == 10
    assert load_checkpoint(tmp_path / "run").config.tokenizer.level == level


def test_head_bias_starts_at_the_unigram_log_frequencies() -> None:
    from lstmtext.config import ModelConfig, RunConfig
    from lstmtext.data.tokenizer import TextTokenizer

    text = "aaaaaaab" * 50
    tokenizer = TextTokenizer.train([text], TokenizerConfig("char"))
    ids = tokenizer.encode_array(text)
    model_config = ModelConfig(tokenizer.vocab_size, embedding_dim=8, hidden_size=8, num_layers=1)
    run_config = RunConfig(tokenizer=TokenizerConfig("char"), model=model_config, train=small_config())
    trainer = language_model_trainer(run_config, tokenizer, ids, None, Path("unused"))
    bias = trainer.model.head.bias.detach()
    a, b = tokenizer.encode("a")[0], tokenizer.encode("b")[0]
    # At step 0 the model already predicts the unigram distribution; tokens never seen, far less.
    assert (bias[a] - bias[b]).item() == pytest.approx(np.log(350.1 / 50.1), abs=1e-4)
    unseen = torch.tensor([i for i in range(tokenizer.vocab_size) if i not in (a, b)])
    assert (bias[unseen] < bias[b] - 6).all()


def test_a_cosine_bound_by_time_alone_anneals_over_the_clock() -> None:
    by_time = LearningRate(TrainConfig(lr=1.0, lr_schedule="cosine", max_time=100.0), total_steps=0)
    assert by_time.at(7, elapsed=0.0) == pytest.approx(1.0)
    assert by_time.at(7, elapsed=50.0) == pytest.approx(0.05 + 0.95 * 0.5)
    assert by_time.at(7, elapsed=100.0) == pytest.approx(0.05)
    assert by_time.at(7, elapsed=250.0) == pytest.approx(0.05)  # the last evaluation may run past the clock
    by_steps = LearningRate(TrainConfig(lr=1.0, lr_schedule="cosine", max_steps=20, max_time=100.0), 20)
    assert by_steps.at(10, elapsed=99.0) == pytest.approx(0.05 + 0.95 * 0.5)  # steps known: steps decide
    constant = LearningRate(TrainConfig(lr=1.0, lr_schedule="constant", max_time=100.0), total_steps=0)
    assert constant.at(7, elapsed=50.0) == 1.0


def test_a_time_bound_run_lowers_its_rate_as_the_clock_runs(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    # One thread: a tiny model's steps are hand-offs on two, and this run counts its steps in 2 s.
    config = small_config(max_steps=None, max_time=2.0, lr_schedule="cosine", eval_every=40, threads=1)
    result = train_language_model([str(corpus)], TokenizerConfig("char"), SHAPE, config, tmp_path / "run")
    assert result.stop_reason == "max_time"
    rates = [record["lr"] for record in result.history if record["kind"] == "log"]
    assert len(rates) >= 3
    assert rates == sorted(rates, reverse=True) and rates[-1] < 0.8 * rates[0] <= 1e-2


def test_ar_and_tar_shape_the_updates_but_not_the_reported_loss(tmp_path: Path) -> None:
    from lstmtext.config import RunConfig
    from lstmtext.data.tokenizer import TextTokenizer

    tokenizer = TextTokenizer.train([TINY_TEXT], TokenizerConfig("char"))
    ids = tokenizer.encode_array(TINY_TEXT)

    def one_step(**penalties) -> tuple[float, torch.Tensor]:
        config = small_config(max_steps=1, **penalties)
        run_config = RunConfig(TokenizerConfig("char"), SHAPE.model_config(tokenizer.vocab_size), config)
        trainer = language_model_trainer(run_config, tokenizer, ids, None, tmp_path / "unused")
        loss = trainer._train_step(trainer.task.next_batch(0), 1e-2)
        return loss, trainer.model.core.lstm.weight_hh_l1.detach().clone()

    plain_loss, plain_weights = one_step()
    penalised_loss, penalised_weights = one_step(activation_penalty=2.0, temporal_penalty=1.0)
    assert penalised_loss == pytest.approx(plain_loss, abs=1e-6)  # the cross-entropy, same seed, same masks
    assert not torch.equal(plain_weights, penalised_weights)
