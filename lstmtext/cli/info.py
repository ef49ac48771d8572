"""`lstmtext info`: what a checkpoint holds."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from lstmtext.cli.options import model_folder
from lstmtext.cli.untrusted import escaped
from lstmtext.core.model import count_parameters
from lstmtext.errors import CheckpointError
from lstmtext.pretrained import embedded_name
from lstmtext.runs.average import AVERAGED
from lstmtext.runs.checkpoint import BEST, load_checkpoint
from lstmtext.runs.run_directory import read_metrics


def info(
    model: Annotated[
        Path,
        typer.Argument(
            parser=model_folder, help="Checkpoint directory, or an embedded model's name (english, ...)."
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Config, parameter count, vocabulary size and training summary of a checkpoint."""
    checkpoint = load_checkpoint(model)
    config = checkpoint.config
    summary: dict[str, Any] = {
        "path": str(model),
        "embedded_model": embedded_name(model),  # which one, when a name chose it
        "task": config.model.task,
        "level": config.tokenizer.level,
        "vocab_size": checkpoint.tokenizer.vocab_size,
        "parameters": count_parameters(checkpoint.model),
        "layers": config.model.num_layers,
        "hidden_size": config.model.hidden_size,
        "embedding_dim": config.model.embedding_dim,
        "dropout": config.model.dropout,
        "locked_dropout": config.model.locked_dropout,
        "weight_drop": config.model.weight_drop,
        "tie_weights": config.model.tie_weights,
        "softmax_cutoff": config.model.softmax_cutoff or None,  # None: full softmax
        "labels": list(config.labels),
        "weight_average_decay": config.train.ema or None,  # the kept weights are an average (--ema)
        "activation_penalty": config.train.activation_penalty or None,  # AR (--ar)
        "temporal_penalty": config.train.temporal_penalty or None,  # TAR (--tar)
        "started_from": config.train.start_from,  # fine-tuned from this language model (train --from)
        "added_tokens": config.train.added_tokens or None,  # ... and its vocabulary grew by these
        "format_version": config.format_version,
    }
    averaged = _read_record(model / AVERAGED)
    if averaged is not None:
        summary["averaged_from"] = averaged.get("averaged_from")
    best = _read_record(model / BEST)
    if best is not None:
        summary["best"] = best
    records = read_metrics(model)
    if records:
        # metrics.jsonl is a log anyone can edit: a field of the wrong type is left out, not fatal.
        step, elapsed = records[-1].get("step"), records[-1].get("elapsed")
        summary["steps"] = step if isinstance(step, int) and not isinstance(step, bool) else None
        if isinstance(elapsed, (int, float)) and not isinstance(elapsed, bool) and math.isfinite(elapsed):
            summary["elapsed_minutes"] = round(elapsed / 60, 2)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    table = Table(show_header=False, box=None)
    for key, value in summary.items():
        if value in ([], None):
            continue
        table.add_row(key.replace("_", " "), escaped(_shown(value)))  # labels and paths are anyone's text
    Console().print(table)


def _read_record(path: Path) -> dict | None:
    """A JSON object a run wrote beside its weights, None when absent."""
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"cannot read {path}: {error}") from None
    if not isinstance(record, dict):
        raise CheckpointError(f"{path} is not a JSON object")
    return record


def _shown(value: object) -> str:
    if isinstance(value, bool):  # before int: a bool is an int
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{key.replace('_', ' ')} {_shown(item)}" for key, item in value.items())
    if isinstance(value, list):
        return ", ".join(_shown(item) for item in value)
    return str(value)
