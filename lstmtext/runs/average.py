"""The uniform average of several checkpoints of one model (as fairseq's average_checkpoints.py).

Checkpoints a few hundred steps apart on one run lie in one valley of the loss, and their
mean can score below the best of them (Tiny Shakespeare, BENCHMARKS.md: the best checkpoint
averaged with the one 100 steps later, 1.4020 nats/char against 1.4035 for the best alone);
the best checkpoints of two runs cannot be averaged so (1.5136). Unlike `--ema`, this needs
nothing decided before training: average the best and the last step checkpoints a run kept.

write_average(Path("runs/lm-avg"), [Path("runs/lm"), Path("runs/lm/checkpoints/step-00001300")])

Three things in lstmtext average; this module is the second:
- weight_ema: one run's weights, averaged over its training steps as it trains (`--ema`);
- checkpoint_average: saved checkpoints' weights, averaged after training (`lstmtext average`);
- lm_ensemble and classify.Ensemble: several models' predicted probabilities, the weights
  untouched (`--model` given more than once).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from lstmtext.errors import CheckpointError
from lstmtext.files import atomic_write_text
from lstmtext.runs.checkpoint import Checkpoint, load_checkpoint, write_model_files
from lstmtext.runs.checkpoint_files import TRAINER_STATE
from lstmtext.runs.resume_files import resume_directory

AVERAGED = "averaged.json"  # which checkpoints an averaged one came from


def average_checkpoints(directories: Sequence[Path]) -> Checkpoint:
    """Load each checkpoint, check they are one model, and return the first holding their mean."""
    if len(directories) < 2:
        raise CheckpointError("averaging needs at least two checkpoints")
    checkpoints = [load_checkpoint(directory) for directory in directories]
    first = checkpoints[0]
    for other in checkpoints[1:]:
        if other.config.model != first.config.model:
            raise CheckpointError(
                f"{other.path} is not the same model as {first.path}: {_differences(first, other)}"
            )
        if other.tokenizer.to_str() != first.tokenizer.to_str():
            raise CheckpointError(f"{other.path} has another tokenizer than {first.path}")
        if other.config.labels != first.config.labels:
            raise CheckpointError(f"{other.path} has other labels than {first.path}")
        check_one_run(first, other)
    states = [checkpoint.model.state_dict() for checkpoint in checkpoints]
    for name, tensor in states[0].items():
        # Integer buffers (a two-level softmax's frequency order) are facts, not weights.
        if not tensor.is_floating_point() and any(not torch.equal(s[name], tensor) for s in states[1:]):
            raise CheckpointError(f"the checkpoints differ in {name}: they are not one model's")
    with torch.no_grad():
        mean = {
            name: torch.stack([state[name].float() for state in states]).mean(dim=0).to(tensor.dtype)
            if tensor.is_floating_point()
            else tensor
            for name, tensor in states[0].items()
        }
    first.model.load_state_dict(mean)  # a tied weight is one tensor under two names: both get the mean
    return first


def check_one_run(first: Checkpoint, other: Checkpoint) -> None:
    """Refuse checkpoints of two runs, by what each run recorded: the fingerprint of the data and
    tokenizer in its trainer state, and its --random-state. Two runs' weights are unrelated
    (units permuted, another valley of the loss): their mean is noise, whatever their shapes."""
    ours, theirs = _fingerprint(first.path), _fingerprint(other.path)
    if ours and theirs and ours.get("corpus") != theirs.get("corpus"):
        raise CheckpointError(
            f"{other.path} was trained on other data than {first.path} (the data fingerprints in their "
            "trainer state differ): average checkpoints of one run"
        )
    seeds = first.config.train.random_state, other.config.train.random_state
    if seeds[0] != seeds[1]:
        raise CheckpointError(
            f"{other.path} is another run than {first.path}: trained with --random-state {seeds[1]}, "
            f"not {seeds[0]}; the weights of two runs do not average: average checkpoints of one run"
        )


def _fingerprint(path: Path) -> dict[str, str] | None:
    """The data fingerprint a run recorded: in a step checkpoint's own trainer state, or in a run
    folder's checkpoints/last; None where there is none (an export, an average, a pretrained model)."""
    for directory in (path, resume_directory(path / "checkpoints" / "last")):
        try:
            state = json.loads((directory / TRAINER_STATE).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            continue
        found = state.get("fingerprint") if isinstance(state, dict) else None
        if isinstance(found, dict):
            return found
    return None


def _differences(first: Checkpoint, other: Checkpoint) -> str:
    """What differs between two model configs, `name a vs b` for each field."""
    ours, theirs = dataclasses.asdict(first.config.model), dataclasses.asdict(other.config.model)
    differ = [name for name in ours if ours[name] != theirs[name]]
    return ", ".join(f"{name} {ours[name]!r} vs {theirs[name]!r}" for name in differ)


def write_average(out_dir: Path, directories: Sequence[Path]) -> Checkpoint:
    """Average `directories` into a new checkpoint folder `out_dir` (which must not hold files)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise CheckpointError(f"{out_dir} already exists and is not an empty folder: pick another --out")
    averaged = average_checkpoints(directories)
    write_model_files(out_dir, averaged.config, averaged.tokenizer, averaged.model)
    record = {"averaged_from": [str(directory) for directory in directories]}
    atomic_write_text(out_dir / AVERAGED, json.dumps(record, indent=1) + "\n")
    averaged.path = out_dir
    return averaged
