"""The files of a resume checkpoint: optimizer moments, carried LSTM state and trainer state
beside the model's files, in `checkpoints/last`, replaced whole or not at all; the step copies
kept beside it; and what the trainer state holds besides numbers (random generators, the best
evaluation, the data's fingerprint).

    checkpoints/last/   config.json, tokenizer.json, model.safetensors (checkpoint_files),
                        optimizer.safetensors, trainer_state.json
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from lstmtext.config import ModelShape, RunConfig, TokenizerConfig
from lstmtext.data.corpus import ids_digest
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.errors import CheckpointError, ConfigError
from lstmtext.files import atomic_write_bytes, atomic_write_text, os_error_text
from lstmtext.runs.checkpoint_files import BEST, OPTIMIZER, TRAINER_STATE, tensor_bytes, write_model_files


def optimizer_tensors(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Split an optimizer state_dict into flat tensors and JSON-able param groups."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            tensor = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"optimizer.{index}.{name}"] = tensor
    return tensors, state["param_groups"]


def restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], param_groups: list[dict[str, Any]]
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        if not key.startswith("optimizer."):
            continue
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = tensor
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})


def write_resume_checkpoint(
    directory: Path,
    *,
    config: RunConfig,
    tokenizer: TextTokenizer,
    model: nn.Module,
    extra_tensors: dict[str, torch.Tensor],
    trainer_state: dict[str, Any],
) -> None:
    """Write a complete checkpoint folder next to `directory`, then swap it in.

    The old folder stays whole until the new one is complete, so a crash or a full disk
    mid-write leaves the previous checkpoint intact.
    """
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    staging.chmod(0o755 & ~_umask())  # mkdtemp makes private folders; a checkpoint is an ordinary one
    try:
        write_model_files(staging, config, tokenizer, model)
        atomic_write_bytes(staging / OPTIMIZER, tensor_bytes(extra_tensors))
        atomic_write_text(staging / TRAINER_STATE, json.dumps(trainer_state, indent=1, sort_keys=True))
        retired = None
        if directory.exists():
            retired = directory.with_name(f".{directory.name}.old")
            if retired.exists():
                shutil.rmtree(retired)
            os.replace(directory, retired)
        os.replace(staging, directory)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def resume_directory(directory: Path) -> Path:
    """`directory`, or its retired copy where a crash between the two renames of
    write_resume_checkpoint left only that."""
    retired = directory.with_name(f".{directory.name}.old")
    return retired if not directory.exists() and retired.exists() else directory


def read_resume_checkpoint(directory: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Extra tensors and trainer state of a resume checkpoint (weights: load_weights on
    resume_directory(directory) / WEIGHTS)."""
    directory = resume_directory(directory)
    for name in (OPTIMIZER, TRAINER_STATE):
        if not (directory / name).exists():
            raise CheckpointError(f"cannot resume: {directory / name} is missing")
    try:
        tensors = load_file(directory / OPTIMIZER, device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"cannot resume: {directory / OPTIMIZER} is not a valid safetensors file "
            f"(truncated or corrupt?): {error}"
        ) from None
    try:
        state = json.loads((directory / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(
            f"cannot resume: {directory / TRAINER_STATE} is not valid JSON ({error})"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"cannot resume from {directory}: {TRAINER_STATE} is not an object")
    return tensors, state


def save_error(out_dir: Path, error: OSError) -> CheckpointError:
    """One true line for a save that failed (full disk, read-only folder): why, and what of
    the run is still on disk, read from the disk rather than assumed."""
    last = resume_directory(out_dir / "checkpoints" / "last")
    kept = "nothing of this run was saved yet"
    step = _saved_step(last / TRAINER_STATE)
    best = _saved_step(out_dir / BEST)
    if step is not None:
        kept = f"the checkpoint of step {step} is intact (free space, then continue with --resume)"
    elif best is not None:
        kept = f"the best model so far (step {best}) is intact"
    return CheckpointError(f"cannot save a checkpoint in {out_dir}: {os_error_text(error)}; {kept}")


def _saved_step(path: Path) -> int | None:
    try:
        step = json.loads(path.read_text(encoding="utf-8")).get("step")
    except (OSError, ValueError, AttributeError):
        return None
    return step if isinstance(step, int) else None


def rng_state(device: torch.device) -> dict[str, Any]:
    return {
        "torch_rng": torch.get_rng_state().tolist(),
        "cuda_rng": [s.tolist() for s in torch.cuda.get_rng_state_all()] if device.type == "cuda" else [],
    }


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
    if device.type == "cuda" and state.get("cuda_rng"):
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda_rng"]])


def write_last(
    out_dir: Path,
    *,
    config: RunConfig,
    tokenizer: TextTokenizer,
    model: nn.Module,
    tensors: dict[str, Tensor],
    trainer_state: dict[str, Any],
    step: int,
    keep_last: int,
) -> None:
    """checkpoints/last, then a copy as checkpoints/step-N; only the newest `keep_last` copies stay."""
    last = out_dir / "checkpoints" / "last"
    write_resume_checkpoint(
        last,
        config=config,
        tokenizer=tokenizer,
        model=model,
        extra_tensors=tensors,
        trainer_state=trainer_state,
    )
    if keep_last <= 0:
        return
    step_dir = out_dir / "checkpoints" / f"step-{step:08d}"
    if not step_dir.exists():
        # Copied under a hidden name, then renamed: a full disk never leaves half a step folder.
        partial = step_dir.with_name(f".{step_dir.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            shutil.copytree(last, partial)
            os.replace(partial, step_dir)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    step_dirs = sorted(p for p in step_dir.parent.glob("step-*") if p.is_dir())
    for old in step_dirs[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)


def check_fingerprint(saved: object, fingerprint: dict[str, str] | None, out_dir: Path) -> None:
    """A resume on other data or with another tokenizer is refused. Checkpoints from before
    fingerprints (or a caller without one) are not checked."""
    if not isinstance(saved, dict) or not fingerprint:
        return
    what = {"tokenizer": "tokenizer", "corpus": "corpus (or its validation split)"}
    for key, name in what.items():
        if key in saved and key in fingerprint and saved[key] != fingerprint[key]:
            raise CheckpointError(
                f"cannot resume {out_dir}: the {name} differs from the one the run trained "
                "on; resume with the same data and options, or start a new run"
            )


def saved_best(state: dict[str, Any]) -> tuple[dict[str, float], tuple[float, ...] | None]:
    """The best evaluation's figures and score in a trainer state. Language-model checkpoints
    from before the loop served several tasks keep the validation loss alone."""
    best_val_loss = state["best_val_loss"]
    metrics = state.get("best_metrics") or ({} if best_val_loss is None else {"val_loss": best_val_loss})
    score = state.get("best_score")
    if score is None and best_val_loss is not None:
        score = [-best_val_loss]
    return metrics, None if score is None else tuple(float(s) for s in score)


def run_fingerprint(
    tokenizer: TextTokenizer, train_ids: np.ndarray, val_ids: np.ndarray | None
) -> dict[str, str]:
    """sha256 of the tokenizer and of the token ids trained on, kept in the trainer state so that
    a resume on another corpus or with another tokenizer is refused."""
    return {
        "tokenizer": hashlib.sha256(tokenizer.to_str().encode("utf-8")).hexdigest(),
        "corpus": ids_digest(train_ids, val_ids),
    }


def check_resume_shape(
    previous: RunConfig,
    shape: ModelShape,
    tokenizer_config: TokenizerConfig,
    fields: Collection[str] | None,
) -> None:
    """A resumed run keeps its model and tokenizer: a size asked for now that differs is refused,
    not silently ignored."""
    asked = {f.name: getattr(shape, f.name) for f in dataclasses.fields(ModelShape)}
    asked |= {f.name: getattr(tokenizer_config, f.name) for f in dataclasses.fields(TokenizerConfig)}
    kept = dataclasses.asdict(previous.model) | dataclasses.asdict(previous.tokenizer)
    for name in sorted(asked if fields is None else set(fields) & set(asked)):
        if asked[name] != kept[name]:
            raise ConfigError(
                f"cannot resume with {name} {asked[name]!r}: the run in --out was trained with "
                f"{kept[name]!r}; leave the option out, or start a new run"
            )
