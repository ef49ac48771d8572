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
FILES = ("config.json", "tokenizer.json", "model.safetensors")


def default_lm_dir() -> Path:
    """The folder of the embedded char model, the default of `lstmtext generate`."""
    directory = PRETRAINED / SHAKESPEARE
    missing = [name for name in FILES if not (directory / name).is_file()]
    if missing:
        raise CheckpointError(
            f"the embedded model is not installed ({directory} lacks {', '.join(missing)}); "
            "build it with `make pretrained` or pass --model DIR"
        )
    return directory


SENTIMENT = "sentiment"


def default_classifier_dir() -> Path:
    """The folder of the embedded sentiment classifier, the default of `lstmtext classify`."""
    directory = PRETRAINED / SENTIMENT
    missing = [name for name in FILES if not (directory / name).is_file()]
    if missing:
        raise CheckpointError(
            f"the embedded sentiment model is not installed ({directory} lacks {', '.join(missing)}); "
            "build it with `make pretrained-sentiment` or pass --model DIR"
        )
    return directory
