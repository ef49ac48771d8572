"""AWD-LSTM's variable BPTT (`--vary-seq-len`): the draw, the tiling of each epoch, exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from lstmtext.config import ModelShape, RunConfig, TokenizerConfig, TrainConfig
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.lm.task import language_model_trainer, window_length

from .conftest import TINY_TEXT, TINY_TRAIN_ARGS, train_whole_and_split

SHAPE = ModelShape(embedding_dim=16, hidden_size=32, num_layers=2, dropout=0.1)


def config(**overrides) -> TrainConfig:
    values = dict(
        seq_len=16, batch_size=4, lr=1e-2, eval_every=10, max_steps=30, random_state=3, patience=None,
        vary_seq_len=True,
    )  # fmt: skip
    return TrainConfig(**(values | overrides))


def test_fixed_windows_unless_asked() -> None:
    plain = config(vary_seq_len=False, seq_len=70)
    assert {window_length(plain, step) for step in range(200)} == {70}


def test_the_draw_follows_awd_lstm_and_depends_on_seed_and_step_alone() -> None:
    varied = config(seq_len=70)
    lengths = np.array([window_length(varied, step) for step in range(4000)])
    assert [window_length(varied, step) for step in range(50)] == list(lengths[:50])  # no hidden state
    assert lengths.min() >= 5
    full = lengths[lengths > 52]  # N(70, 5) against N(35, 5): 17.5 is 3.5 sigma from either
    assert 0.93 < len(full) / len(lengths) < 0.97
    assert abs(full.mean() - 70) < 0.5 and 4 < full.std() < 6
    assert len(np.unique(lengths)) > 20
    other_seed = [window_length(config(seq_len=70, random_state=4), step) for step in range(50)]
    assert other_seed != list(lengths[:50])


def test_an_epoch_of_varied_windows_reads_every_input_once_in_order(monkeypatch, tmp_path: Path) -> None:
    text = TINY_TEXT * 3
    tokenizer = TextTokenizer.train([text], TokenizerConfig("char"))
    ids = tokenizer.encode_array(text)
    model_config = SHAPE.model_config(vocab_size=tokenizer.vocab_size)
    run_config = RunConfig(model=model_config, tokenizer=TokenizerConfig("char"), train=config(max_steps=200))
    trainer = language_model_trainer(run_config, tokenizer, ids, None, tmp_path / "run")
    seen: list[torch.Tensor] = []
    rates: list[float] = []

    def record(batch: tuple[torch.Tensor, torch.Tensor], lr: float) -> float:
        seen.append(batch[0])
        rates.append(lr)
        return 1.0

    monkeypatch.setattr(trainer, "_train_step", record)
    monkeypatch.setattr(trainer, "_eval_and_save", lambda loss, lr: False)
    trainer.fit()
    rows = trainer.task.train_stream.rows
    per_row = trainer.task.train_stream.inputs_per_row
    widths = [batch.shape[1] for batch in seen]
    ends = np.cumsum(widths)
    first_epoch = int(np.searchsorted(ends, per_row)) + 1
    assert ends[first_epoch - 1] == per_row  # the epoch's last window is cut at the row's end
    epoch_inputs = torch.from_numpy(rows[:, :per_row].astype(np.int64))
    assert torch.equal(torch.cat(seen[:first_epoch], dim=1), epoch_inputs)
    assert len(set(widths[: first_epoch - 1])) > 3
    # The next epoch starts at the head of every row again, and its windows fall elsewhere.
    assert torch.equal(seen[first_epoch][:, 0], torch.from_numpy(rows[:, 0].astype(np.int64)))
    assert widths[first_epoch : 2 * first_epoch] != widths[:first_epoch]
    # The rate is the schedule's (constant here), scaled by the window's share of seq_len.
    assert all(
        abs(rate - config().lr * width / 16) < 1e-12 for width, rate in zip(widths, rates, strict=True)
    )


def test_a_varied_run_resumed_equals_the_uninterrupted_one(tmp_path: Path) -> None:
    whole, split = train_whole_and_split(config(max_steps=25, lr_schedule="constant"), SHAPE, tmp_path)
    a = load_file(whole / "checkpoints" / "last" / "model.safetensors")
    b = load_file(split / "checkpoints" / "last" / "model.safetensors")
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_the_cli_takes_the_option(cli, tiny_corpus: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = cli(["train", str(tiny_corpus), "--out", str(run), "--vary-seq-len", *TINY_TRAIN_ARGS])
    assert result.exit_code == 0, result.stderr
    assert RunConfig.from_dict(json.loads((run / "config.json").read_text())).train.vary_seq_len
