"""The resume checkpoint of a training run: checkpoints/last, and the step copies beside it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lstmtext import checkpoint as ckpt
from lstmtext.config import RunConfig
from lstmtext.errors import CheckpointError
from lstmtext.tokenizer import TextTokenizer


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
    ckpt.write_resume_checkpoint(
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
