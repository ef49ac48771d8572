"""What the one training loop gives both tasks: exact resume, step checkpoints, NaN rollback,
ULMFiT's fine-tuning options, configs saved whole, and global state left as found."""

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lstmtext.classifier.api import train_classifier
from lstmtext.config import ClassifierOptions, RunConfig, TokenizerConfig, TrainConfig
from lstmtext.errors import CheckpointError
from lstmtext.events import TrainEvent
from lstmtext.lm.api import ModelShape, train_language_model
from lstmtext.runs import checkpoint as ckpt
from lstmtext.training.loop import Trainer
from tests.conftest import TINY_TEXT

SHAPE = ModelShape(embedding_dim=8, hidden_size=16, num_layers=2, dropout=0.1)
WORDS = ["fine", "warm", "great", "moving", "dull", "cold", "bad", "boring", "film", "story", "cast"]


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(48):
        words = rng.choice(WORDS, size=int(rng.integers(3, 9)))
        good = sum(w in WORDS[:4] for w in words) >= sum(w in WORDS[4:8] for w in words)
        rows.append(f"{'positive' if good else 'negative'}\t{' '.join(words)} {i}\n")
    path = tmp_path / "data.tsv"
    path.write_text("".join(rows), encoding="utf-8")
    return path


def classifier_config(**values) -> TrainConfig:
    fixed = dict(batch_size=4, max_steps=12, eval_every=3, random_state=5, threads=1, patience=None)
    return TrainConfig(**(fixed | {"precision": "fp32", "val_fraction": 0.25} | values))


def eval_losses(run: Path) -> list[float]:
    return [r["loss"] for r in ckpt.read_metrics(run) if r["kind"] == "eval"]


def test_a_classifier_run_stopped_and_resumed_matches_one_run_through(tmp_path: Path, labelled: Path) -> None:
    token = TokenizerConfig("char")
    train_classifier([labelled], token, SHAPE, classifier_config(), tmp_path / "straight")
    stop = threading.Event()

    def stop_at_six(event: TrainEvent) -> None:
        if event.kind == "eval" and event.step == 6:
            stop.set()

    first = train_classifier(
        [labelled],
        token,
        SHAPE,
        classifier_config(),
        tmp_path / "resumed",
        on_event=stop_at_six,
        stop_event=stop,
    )
    assert first.stop_reason == "interrupted" and first.steps == 6
    resumed = train_classifier(
        [labelled], token, SHAPE, classifier_config(), tmp_path / "resumed", resume=True
    )
    assert resumed.steps == 12
    assert eval_losses(tmp_path / "resumed") == eval_losses(tmp_path / "straight")
    straight = load_file(tmp_path / "straight" / ckpt.WEIGHTS)
    again = load_file(tmp_path / "resumed" / ckpt.WEIGHTS)
    assert all(torch.equal(straight[name], again[name]) for name in straight)


def test_a_classifier_keeps_its_last_step_checkpoints(tmp_path: Path, labelled: Path) -> None:
    run = tmp_path / "run"
    train_classifier([labelled], TokenizerConfig("char"), SHAPE, classifier_config(keep_last=2), run)
    steps = sorted(p.name for p in (run / "checkpoints").glob("step-*"))
    assert steps == ["step-00000009", "step-00000012"]


def test_a_classifier_rolls_back_a_nan_loss(tmp_path: Path, labelled: Path, monkeypatch) -> None:
    real_step = Trainer._train_step
    poisoned = {7}

    def step(self: Trainer, batch, lr):  # type: ignore[no-untyped-def]
        loss = real_step(self, batch, lr)
        return float("nan") if self.step in poisoned and not poisoned.discard(self.step) else loss

    monkeypatch.setattr(Trainer, "_train_step", step)
    events: list[TrainEvent] = []
    result = train_classifier(
        [labelled],
        TokenizerConfig("char"),
        SHAPE,
        classifier_config(),
        tmp_path / "run",
        on_event=events.append,
    )
    assert result.stop_reason == "finished" and result.steps == 12
    assert any("rolled back to step 6" in e.message for e in events if e.kind == "warning")


def test_the_classifier_options_are_saved_and_a_version_1_config_still_loads(
    tmp_path: Path, labelled: Path
) -> None:
    run = tmp_path / "run"
    options = ClassifierOptions(max_tokens=40, class_weights=True)
    train = classifier_config(max_steps=3, discriminative_lr=2.6)
    train_classifier([labelled], TokenizerConfig("char"), SHAPE, train, run, options=options)
    saved = ckpt.read_config(run)
    assert saved.classifier == options and saved.train.discriminative_lr == 2.6
    old = json.loads((run / ckpt.CONFIG).read_text())
    del old["classifier"]
    old["format_version"] = 1
    old["train"].pop("discriminative_lr")
    loaded = RunConfig.from_dict(old)
    assert (
        loaded.classifier is None and loaded.labels == saved.labels and loaded.train.discriminative_lr == 1.0
    )


def test_discriminative_rates_and_gradual_unfreezing_serve_a_language_model(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    train = TrainConfig(
        batch_size=4,
        seq_len=16,
        max_steps=8,
        eval_every=4,
        threads=1,
        unfreeze_every=2,
        discriminative_lr=2.0,
    )
    events: list[TrainEvent] = []
    run = tmp_path / "run"
    train_language_model([str(corpus)], TokenizerConfig("char"), SHAPE, train, run, on_event=events.append)
    said = [e.message for e in events if e.kind == "warning"]
    assert said[:3] == [
        "training the head",
        "training the top 2 layer groups",
        "training the top 3 layer groups",
    ]
    groups = json.loads((run / "checkpoints" / "last" / "trainer_state.json").read_text())["param_groups"]
    rates = [group["lr"] for group in groups]  # embedding, layer 0, layer 1, head: each half the one above
    assert rates == pytest.approx([rates[-1] / 8, rates[-1] / 4, rates[-1] / 2, rates[-1]])


def test_training_leaves_torch_random_state_and_threads_as_it_found_them(
    tmp_path: Path, labelled: Path
) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    train_classifier(
        [labelled], TokenizerConfig("char"), SHAPE, classifier_config(max_steps=2), tmp_path / "c"
    )
    corpus = tmp_path / "c.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    train = TrainConfig(batch_size=4, seq_len=16, max_steps=2, threads=1, random_state=9)
    train_language_model([str(corpus)], TokenizerConfig("char"), SHAPE, train, tmp_path / "lm")
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


def test_a_resume_on_other_labelled_data_is_refused(tmp_path: Path, labelled: Path) -> None:
    run = tmp_path / "run"
    train_classifier([labelled], TokenizerConfig("char"), SHAPE, classifier_config(max_steps=3), run)
    other = tmp_path / "other.tsv"
    other.write_text(labelled.read_text(encoding="utf-8").replace("film", "show"), encoding="utf-8")
    with pytest.raises(CheckpointError, match="differs"):
        train_classifier(
            [other], TokenizerConfig("char"), SHAPE, classifier_config(max_steps=6), run, resume=True
        )


def test_train_classifier_resumes_from_the_command_line(cli, tmp_path: Path, labelled: Path) -> None:
    run = tmp_path / "run"
    args = [
        "train-classifier",
        str(labelled),
        "--out",
        str(run),
        "--hidden",
        "8",
        "--embed",
        "4",
        "--layers",
        "1",
    ]
    args += ["--batch-size", "4", "--eval-every", "3", "--threads", "1"]
    assert cli([*args, "--max-steps", "3"]).exit_code == 0
    again = cli([*args, "--max-steps", "6"])
    assert again.exit_code == 1 and "--resume" in again.stderr  # the folder holds a run
    resumed = cli([*args, "--max-steps", "6", "--resume"])
    assert resumed.exit_code == 0, resumed.stderr
    assert [r["step"] for r in ckpt.read_metrics(run) if r["kind"] == "eval"] == [3, 6]
