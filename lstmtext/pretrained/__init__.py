"""Models shipped inside the package: one folder per checkpoint.

`shakespeare/` is a char-level LSTM trained on Tiny Shakespeare (`make pretrained`);
`sentiment/` a negative/positive classifier on a review language model's core
(`make pretrained-sentiment`). Weights are stored as fp16 and upcast to fp32 on load; each
`config.json` gives the shape, BENCHMARKS.md the training time and scores.
"""

from __future__ import annotations

from pathlib import Path

from lstmtext.errors import CheckpointError

PRETRAINED = Path(__file__).resolve().parent
SHAKESPEARE = "shakespeare"
SENTIMENT = "sentiment"
FILES = ("config.json", "tokenizer.json", "model.safetensors")


def _installed(name: str, what: str, make_target: str) -> Path:
    """The folder of the embedded model `name`, once every file of it is there."""
    directory = PRETRAINED / name
    missing = [file for file in FILES if not (directory / file).is_file()]
    if missing:
        raise CheckpointError(
            f"the embedded {what} is not installed ({directory} lacks {', '.join(missing)}); "
            f"build it with `make {make_target}` or pass --model DIR"
        )
    return directory


def default_lm_dir() -> Path:
    """The folder of the embedded char model, the default of `lstmtext generate`."""
    return _installed(SHAKESPEARE, "model", "pretrained")


def default_classifier_dir() -> Path:
    """The folder of the embedded sentiment classifier, the default of `lstmtext classify`."""
    return _installed(SENTIMENT, "sentiment model", "pretrained-sentiment")
