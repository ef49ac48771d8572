"""The weight average: its arithmetic, what a run keeps with it, and that it resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from lstmtext.config import TokenizerConfig, TrainConfig
from lstmtext.errors import ConfigError
from lstmtext.lm.api import ModelShape, train_language_model
from lstmtext.training.weight_ema import PREFIX, WeightAverage

from .conftest import TINY_TEXT, train_whole_and_split

SHAPE = ModelShape(embedding_dim=16, hidden_size=32, num_layers=2, dropout=0.1)


def config(**overrides) -> TrainConfig:
    values = dict(
        seq_len=16, batch_size=4, lr=1e-2, eval_every=10, max_steps=30, random_state=3, patience=None, ema=0.9
    )
    return TrainConfig(**(values | overrides))


def test_the_average_follows_its_formula_and_is_applied_only_inside_the_block() -> None:
    layer = nn.Linear(3, 2)
    start = layer.weight.detach().clone()
    average = WeightAverage(layer, decay=0.5)
    expected = start.clone()
    for step in (1, 2, 3):
        with torch.no_grad():
            layer.weight.add_(1.0)
        average.update(step)
        decay = min(0.5, (1 + step) / (10 + step))  # the ramp: 0.18, 0.25, 0.31 stay below 0.5
        expected = decay * expected + (1 - decay) * layer.weight.detach()
    own = layer.weight.detach().clone()
    with average.applied():
        assert torch.allclose(layer.weight, expected)
    assert torch.equal(layer.weight, own)
    assert not torch.allclose(expected, own)


def test_a_tied_weight_is_averaged_once_and_stays_tied() -> None:
    from lstmtext.config import ModelConfig
    from lstmtext.core.model import LanguageModel

    model = LanguageModel(
        ModelConfig(vocab_size=20, embedding_dim=8, hidden_size=8, num_layers=1, tie_weights=True)
    )
    average = WeightAverage(model, decay=0.9)
    assert sum(name.endswith("embedding.weight") for name in average.names) == 1
    with torch.no_grad():
        model.core.embedding.weight.add_(1.0)
    average.update(100)
    with average.applied():
        assert model.head.weight is model.core.embedding.weight


def test_a_run_keeps_the_averaged_weights_and_trains_on_its_own(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    run = tmp_path / "run"
    result = train_language_model(
        [str(corpus)], TokenizerConfig("char"), SHAPE, config(keep_last=5, val_fraction=0.1), run
    )
    best = json.loads((run / "best.json").read_text())
    assert best["step"] == result.best_step
    step_dir = run / "checkpoints" / f"step-{best['step']:08d}"
    kept = load_file(run / "model.safetensors")
    saved_average = load_file(step_dir / "optimizer.safetensors")
    raw = load_file(step_dir / "model.safetensors")
    for name, tensor in kept.items():
        assert torch.equal(tensor, saved_average[PREFIX + name]), name
    assert any(not torch.equal(kept[name], raw[name]) for name in kept)


def test_an_averaged_run_resumed_equals_the_uninterrupted_one(tmp_path: Path) -> None:
    whole, split = train_whole_and_split(config(max_steps=25), SHAPE, tmp_path)
    for name in ("model.safetensors", "checkpoints/last/optimizer.safetensors"):
        a, b = load_file(whole / name), load_file(split / name)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), (name, key)


def test_a_decay_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ConfigError, match="ema"):
        TrainConfig(ema=1.0)


def test_a_classifier_run_keeps_its_average(tmp_path: Path) -> None:
    from dataclasses import replace

    from lstmtext.classifier.api import classifier_trainer
    from lstmtext.config import ModelConfig, RunConfig
    from lstmtext.core.model import Classifier
    from lstmtext.data.labelled import LabelledData
    from lstmtext.data.tokenizer import TextTokenizer

    texts = ("good film .", "bad film .", "great fun .", "awful mess .") * 4
    labels = ("positive", "negative", "positive", "negative") * 4
    data = LabelledData(texts, labels, tuple(f"a:{i}" for i in range(len(texts))))
    tokenizer = TextTokenizer.train(list(texts), TokenizerConfig("word"))
    model_config = ModelConfig(vocab_size=tokenizer.vocab_size, embedding_dim=8, hidden_size=8, num_layers=1)
    model_config = replace(model_config, task="classify", num_classes=2)
    train = TrainConfig(batch_size=4, lr=1e-2, max_steps=12, eval_every=100, ema=0.9, random_state=1)
    run_config = RunConfig(TokenizerConfig("word"), model_config, train, labels=("negative", "positive"))
    trainer = classifier_trainer(run_config, tokenizer, Classifier(model_config), data, None, tmp_path)
    trainer.fit()
    kept = load_file(tmp_path / "model.safetensors")
    averaged = trainer.average.tensors()
    raw = dict(trainer.model.named_parameters())
    for name, tensor in kept.items():
        assert torch.equal(tensor, averaged[PREFIX + name]), name
    assert any(not torch.equal(kept[name], raw[name].detach()) for name in kept)
