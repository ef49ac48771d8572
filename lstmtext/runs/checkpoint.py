"""Checkpoint directories: JSON and safetensors only, every write atomic, never a pickle.

A run directory (`--out`) is itself a checkpoint of the best model, so `--model RUN`
works, and keeps the resume state of the latest step beside it:

    RUN/
      config.json            model, tokenizer and training config, format version
      tokenizer.json         HF tokenizers JSON
      model.safetensors      weights of the best model so far (by validation loss)
      best.json              step and validation loss of those weights
      metrics.jsonl          one JSON object per log line / evaluation
      checkpoints/last/      full resume state of the latest save
      checkpoints/step-N/    the latest `keep_last` step saves
    each checkpoint folder: config.json, tokenizer.json, model.safetensors,
      optimizer.safetensors (optimizer moments, carried LSTM state), trainer_state.json

Reading a checkpoint back, with its parts checked against each other, is this module's job.
The files are written by checkpoint_files (config, tokenizer, weights), resume_files
(checkpoints/last) and run_directory (the lock, metrics.jsonl).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lstmtext.config import ModelConfig, RunConfig
from lstmtext.core.model import Classifier, LanguageModel, build_model
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.errors import CheckpointError, TokenizerError
from lstmtext.files import atomic_write_text
from lstmtext.runs.checkpoint_files import (
    BEST,
    CONFIG,
    MAX_CONFIG_BYTES,
    MAX_TOKENIZER_BYTES,
    METRICS,
    TOKENIZER,
    WEIGHTS,
    check_regular,
    load_weights,
    save_weights,
    weight_shapes,
    write_model_files,
)
from lstmtext.runs.resume_files import (
    optimizer_tensors,
    read_resume_checkpoint,
    restore_optimizer,
    resume_directory,
    save_error,
    write_resume_checkpoint,
)
from lstmtext.runs.run_directory import append_metrics, read_metrics

# The training loop reaches what it writes as `ckpt.<name>`, so those names are kept here too.
__all__ = [
    "BEST",
    "CONFIG",
    "METRICS",
    "TOKENIZER",
    "WEIGHTS",
    "Checkpoint",
    "append_metrics",
    "atomic_write_text",
    "check_weight_shapes",
    "load_checkpoint",
    "load_weights",
    "optimizer_tensors",
    "read_config",
    "read_metrics",
    "read_resume_checkpoint",
    "restore_optimizer",
    "resume_directory",
    "save_error",
    "save_weights",
    "write_model_files",
    "write_resume_checkpoint",
]


@dataclass
class Checkpoint:
    config: RunConfig
    tokenizer: TextTokenizer
    model: LanguageModel | Classifier
    path: Path


def check_weight_shapes(model_config: ModelConfig, path: Path) -> None:
    """The sizes in config.json that decide what building the model allocates (vocabulary,
    embedding, hidden size, layers) against the weights file's header, before anything is
    built: an edited config (10^4 layers, hidden size 20000) must not make loading hang or
    allocate gigabytes first. Every other tensor is compared when the weights are loaded
    into the built model (`load_weights`)."""
    found = weight_shapes(path)
    layers = sum(1 for name in found if name.startswith("core.lstm.weight_hh_l"))
    if layers != model_config.num_layers:
        raise CheckpointError(
            f"{path} does not match the model in config.json "
            f"({layers} LSTM layers, config.json says {model_config.num_layers})"
        )
    hidden = model_config.hidden_size
    implied = {"core.embedding.weight": (model_config.vocab_size, model_config.embedding_dim)}
    implied |= {f"core.lstm.weight_hh_l{k}": (4 * hidden, hidden) for k in range(layers)}
    for name, shape in implied.items():
        if found.get(name) != shape:
            raise CheckpointError(f"{path}: {name} has shape {found.get(name)}, config.json implies {shape}")


def read_config(directory: Path) -> RunConfig:
    directory = Path(directory)
    if not directory.exists():
        raise CheckpointError(f"model directory {directory} does not exist")
    if not directory.is_dir():
        raise CheckpointError(f"{directory} is not a directory (a checkpoint is a folder with {CONFIG})")
    path = directory / CONFIG
    if not path.exists():
        raise CheckpointError(f"{directory} is not a checkpoint: {CONFIG} is missing")
    check_regular(path, MAX_CONFIG_BYTES)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"{directory} is not a checkpoint: {CONFIG} is missing") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CheckpointError(f"cannot read {path}: {error}") from None
    return RunConfig.from_json(text)


def load_checkpoint(directory: Path | str, *, task: str | None = None, device: str = "cpu") -> Checkpoint:
    """Read config, tokenizer and weights; check they agree. `task` = the head the caller needs."""
    directory = Path(directory)
    config = read_config(directory)
    if task is not None and config.model.task != task:
        wanted = {"lm": "a language model", "classify": "a classifier"}
        raise CheckpointError(
            f"{directory} holds {wanted[config.model.task]}, but this command needs {wanted[task]}"
        )
    if not (directory / TOKENIZER).exists():
        raise CheckpointError(f"{directory} is not a complete checkpoint: {TOKENIZER} is missing")
    check_regular(directory / TOKENIZER, MAX_TOKENIZER_BYTES)
    try:
        tokenizer = TextTokenizer.load(directory / TOKENIZER)
    except TokenizerError as error:
        raise CheckpointError(f"{directory}: {error}") from None
    if tokenizer.vocab_size != config.model.vocab_size:
        raise CheckpointError(
            f"{directory}: tokenizer has {tokenizer.vocab_size} tokens but the model expects "
            f"{config.model.vocab_size}"
        )
    check_weight_shapes(config.model, directory / WEIGHTS)
    model = build_model(config.model)
    load_weights(model, directory / WEIGHTS)
    model.to(device)
    model.eval()
    return Checkpoint(config=config, tokenizer=tokenizer, model=model, path=directory)
