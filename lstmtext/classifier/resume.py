"""What a classifier's `--resume` keeps: the run's model, tokenizer, batch size and teacher.

A resumed run continues the run in --out as it was trained. An option given again with another
value (`--hidden 64` where the run has 16, another `--level`, `--batch-size` or `--teacher`) is
refused in one line (exit 2), as a language model's resume refuses other sizes, instead of
being silently ignored or silently changing what the run learns from; an option left out takes
the run's value.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from pathlib import Path

from lstmtext.config import ClassifierOptions, ModelShape, RunConfig, TokenizerConfig, TrainConfig
from lstmtext.errors import CheckpointError, ConfigError
from lstmtext.runs import checkpoint as ckpt
from lstmtext.runs.resume_files import check_resume_shape

# The options besides the model's and tokenizer's that a resume keeps: another batch makes
# other steps, another teacher other targets.
KEPT = ("batch_size", "teacher")


def resumed_config(out_dir: Path) -> RunConfig:
    """The config of the run in `out_dir` to resume."""
    last = ckpt.resume_directory(out_dir / "checkpoints" / "last")
    if not last.exists():
        raise CheckpointError(f"nothing to resume: {last} does not exist")
    return ckpt.read_config(last)


def resumed_settings(
    previous: RunConfig,
    shape: ModelShape,
    tokenizer_config: TokenizerConfig,
    train_config: TrainConfig,
    options: ClassifierOptions,
    typed: Collection[str] | None,
) -> tuple[TrainConfig, ClassifierOptions]:
    """The training config and options to resume with: those given (`typed`; None: all) checked
    against the run's, the rest of KEPT taken from it."""
    check_resume_shape(previous, shape, tokenizer_config, typed)
    kept = previous.classifier or ClassifierOptions()
    asked: dict[str, object] = {"batch_size": train_config.batch_size, "teacher": options.teacher}
    was: dict[str, object] = {"batch_size": previous.train.batch_size, "teacher": kept.teacher}
    for name in KEPT:
        if (typed is None or name in typed) and asked[name] != was[name]:
            raise ConfigError(
                f"cannot resume with {name} {asked[name]!r}: the run in --out was trained with "
                f"{was[name]!r}; leave the option out, or start a new run"
            )
    return replace(train_config, batch_size=previous.train.batch_size), replace(options, teacher=kept.teacher)
