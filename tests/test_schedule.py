"""ULMFiT's slanted triangular rate, for both tasks."""

from dataclasses import replace
from pathlib import Path

import pytest

from lstmtext.classifier.api import classifier_trainer
from lstmtext.config import ModelConfig, RunConfig, TokenizerConfig, TrainConfig
from lstmtext.core.model import Classifier
from lstmtext.data.labelled import LabelledData
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.training.optimization import LearningRate
from lstmtext.training.schedule import slanted_triangular


def test_slanted_triangle_climbs_for_a_tenth_then_falls_to_a_32nd() -> None:
    assert slanted_triangular(0.0) == pytest.approx(1 / 32)
    assert slanted_triangular(0.05) == pytest.approx((1 + 0.5 * 31) / 32)
    assert slanted_triangular(0.1) == pytest.approx(1.0)
    assert slanted_triangular(0.55) == pytest.approx((1 + 0.5 * 31) / 32)
    assert slanted_triangular(1.0) == pytest.approx(1 / 32)
    assert slanted_triangular(2.0) == slanted_triangular(1.0)  # past the end it stays at the floor


def test_language_model_loop_follows_the_triangle_by_step_or_clock() -> None:
    by_steps = LearningRate(TrainConfig(lr=0.01, lr_schedule="slanted"), total_steps=100)
    assert [by_steps.at(s) for s in (0, 10, 100)] == pytest.approx([0.01 / 32, 0.01, 0.01 / 32])
    by_clock = LearningRate(TrainConfig(lr=0.01, lr_schedule="slanted", max_time=60.0), total_steps=0)
    assert by_clock.at(7, elapsed=6.0) == pytest.approx(0.01)


def test_classifier_loop_follows_the_triangle_by_step_or_clock(tmp_path: Path) -> None:
    data = LabelledData(("good .", "bad ."), ("positive", "negative"), ("a:1", "a:2"))
    tokenizer = TextTokenizer.train(list(data.texts), TokenizerConfig("word"))
    model = replace(
        ModelConfig(vocab_size=tokenizer.vocab_size, embedding_dim=4, hidden_size=4, num_layers=1),
        task="classify",
        num_classes=2,
    )
    for train, elapsed, step, expected in (
        (TrainConfig(lr_schedule="slanted", max_time=100.0), 10.0, 0, 1.0),
        (TrainConfig(lr_schedule="slanted", max_time=100.0), 100.0, 0, 1 / 32),
        (TrainConfig(lr_schedule="slanted", max_steps=50), 0.0, 5, 1.0),
    ):
        run_config = RunConfig(TokenizerConfig("word"), model, train, labels=("negative", "positive"))
        trainer = classifier_trainer(
            run_config, tokenizer, Classifier(model), data, None, tmp_path / str(step)
        )
        assert trainer.schedule.at(step, elapsed) / train.lr == pytest.approx(expected)
