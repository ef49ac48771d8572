"""Configs from the options of `lstmtext train` and `lstmtext train-classifier`, built once.

Each table maps a command's option (its parameter name) to the config field it sets, so both
commands build their configs, and a resume learns which model fields the user typed, from the
same lines. An option a command does not have leaves its field at the config's default: the
classifier's command has no --seq-len, its TrainConfig keeps seq_len's.

The values come from `ctx.params`, as click parsed them: an enum option's value is its text,
which is what the configs hold. No torch at import: both commands show their help at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any

import typer

from lstmtext.config import ClassifierOptions, TokenizerConfig, TrainConfig
from lstmtext.errors import ConfigError

if TYPE_CHECKING:
    from lstmtext.config import ModelShape

TOKENIZER_FIELDS = {
    "level": "level",
    "vocab_size": "vocab_size",
    "min_frequency": "min_frequency",
    "max_vocab": "max_vocab",
    "lowercase": "lowercase",
}
SHAPE_FIELDS = {
    "embed": "embedding_dim",
    "hidden": "hidden_size",
    "layers": "num_layers",
    "dropout": "dropout",
    "embed_dropout": "embedding_dropout",
    "locked_dropout": "locked_dropout",
    "weight_drop": "weight_drop",
    "tie_weights": "tie_weights",
    "softmax_cutoff": "softmax_cutoff",
}
# max_time (minutes on the command line, seconds in the config) and patience (0: never stop,
# None in the config) are converted in training_configs.
TRAIN_FIELDS = {
    "seq_len": "seq_len",
    "vary_seq_len": "vary_seq_len",
    "batch_size": "batch_size",
    "lr": "lr",
    "optimizer": "optimizer",
    "weight_decay": "weight_decay",
    "epochs": "epochs",
    "max_steps": "max_steps",
    "clip": "clip",
    "val_fraction": "val_fraction",
    "eval_every": "eval_every",
    "eval_batches": "eval_batches",
    "schedule": "lr_schedule",
    "warmup": "warmup_steps",
    "ema": "ema",
    "ar": "activation_penalty",
    "tar": "temporal_penalty",
    "keep_last": "keep_last",
    "unfreeze": "unfreeze_every",
    "discriminative_lr": "discriminative_lr",
    "random_state": "random_state",
    "device": "device",
    "precision": "precision",
    "threads": "threads",
}


def check_max_time(max_time: float | None) -> None:
    """Checked before anything starts, in the minutes the user gave."""
    if max_time is not None and not max_time > 0:
        raise ConfigError(f"--max-time must be a positive number of minutes, not {max_time}")


def training_configs(params: Mapping[str, Any]) -> tuple[TokenizerConfig, ModelShape, TrainConfig]:
    """The tokenizer config, model shape and training config the options ask for; the shape's
    sizes are checked before any data is read."""
    from lstmtext.config import ModelShape

    tokenizer_config = TokenizerConfig(**_fields(params, TOKENIZER_FIELDS))
    shape = ModelShape(**_fields(params, SHAPE_FIELDS))
    shape.model_config(vocab_size=max(1, shape.softmax_cutoff + 1))
    max_time = params["max_time"]
    train_config = TrainConfig(
        **_fields(params, TRAIN_FIELDS),
        max_time=max_time * 60 if max_time is not None else None,
        patience=params["patience"] or None,
    )
    return tokenizer_config, shape, train_config


def classifier_options(params: Mapping[str, Any]) -> ClassifierOptions:
    """What training a classifier adds to the training config."""
    start_from = params["start_from"]
    options = ClassifierOptions(
        start_from=None if start_from is None else str(start_from),
        label_column=params["label_column"],
        text_column=params["text_column"],
        val_sources=tuple(str(v) for v in params["val"] or ()),
        max_tokens=params["max_tokens"],
        class_weights=params["class_weights"],
        teacher=None if params.get("teacher") is None else str(params["teacher"]),
        teacher_weight=params.get("teacher_weight", ClassifierOptions.teacher_weight),
    )
    return options


def typed_fields(ctx: typer.Context) -> set[str]:
    """The model and tokenizer fields the user set on the command line: a resume checks those
    against the run's, and takes the rest from it."""
    typed = set()
    for option, field in (TOKENIZER_FIELDS | SHAPE_FIELDS).items():
        source = ctx.get_parameter_source(option)
        if source is not None and source.name == "COMMANDLINE":
            typed.add(field)
    return typed


def _fields(params: Mapping[str, Any], fields: Mapping[str, str]) -> dict[str, Any]:
    return {
        field: value.value if isinstance(value := params[option], Enum) else value
        for option, field in fields.items()
        if option in params
    }
