"""The GPU path: device auto-selection, cuDNN LSTM, pinned non-blocking copies, bf16/fp16.

Every test but the first needs CUDA and is skipped cleanly without it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lstmtext.config import ModelConfig, RunConfig, TokenizerConfig, TrainConfig
from lstmtext.core.model import LanguageModel
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.device import resolve_precision, select_device
from lstmtext.errors import ConfigError
from lstmtext.lm.task import language_model_trainer

from .conftest import TINY_TEXT, TINY_TRAIN_ARGS

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")


@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
def test_asking_for_cuda_without_it_is_a_config_error() -> None:
    assert select_device("auto").type == "cpu"
    with pytest.raises(ConfigError, match="CUDA is not available"):
        select_device("cuda")


@needs_cuda
def test_auto_selects_cuda_and_a_native_precision() -> None:
    device = select_device("auto")
    assert device.type == "cuda"
    assert resolve_precision("auto", device) == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
    assert resolve_precision("fp16", device) == "fp16"


@needs_cuda
def test_the_lstm_runs_on_cudnn() -> None:
    assert torch.backends.cudnn.is_available() and torch.backends.cudnn.enabled
    model = LanguageModel(ModelConfig(vocab_size=20, embedding_dim=8, hidden_size=16, num_layers=2)).cuda()
    ids = torch.randint(0, 20, (4, 12), device="cuda")  # (B, T)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        model(ids)[0].sum().backward()
    names = {event.key for event in profile.key_averages()}
    assert "aten::_cudnn_rnn" in names, sorted(names)


@needs_cuda
def test_training_batches_are_pinned_then_copied_to_the_device(tmp_path: Path) -> None:
    tokenizer = TextTokenizer.train([TINY_TEXT], TokenizerConfig("char"))
    ids = tokenizer.encode_array(TINY_TEXT)
    config = RunConfig(
        tokenizer=TokenizerConfig("char"),
        model=ModelConfig(vocab_size=tokenizer.vocab_size, embedding_dim=8, hidden_size=16, num_layers=1),
        train=TrainConfig(seq_len=16, batch_size=4, max_steps=2, device="cuda"),
    )
    trainer = language_model_trainer(config, tokenizer, ids, None, tmp_path / "run")
    inputs, targets = trainer.task.next_batch(0)
    assert inputs.device.type == targets.device.type == "cuda"
    assert trainer.task.train_stream.batch(0)[0].pin_memory().is_pinned()


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_train_then_generate_on_cuda(cli, tiny_corpus: Path, tmp_path: Path, precision: str) -> None:
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    out = tmp_path / precision
    trained = cli(
        ["train", str(tiny_corpus), "--out", str(out), *TINY_TRAIN_ARGS, "--device", "cuda"]
        + ["--precision", precision]
    )
    assert trained.exit_code == 0, trained.stderr
    generated = cli(
        ["generate", "--model", str(out), "--seed", "To be", "--length", "20", "--device", "cuda"]
        + ["--random-state", "1"]
    )
    assert generated.exit_code == 0, generated.stderr
    assert generated.stdout.startswith("To be") and len(generated.stdout) > len("To be")
