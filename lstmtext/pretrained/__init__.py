"""Models shipped inside the package: one folder per checkpoint.

`english/` is a byte-level BPE language model of general English, public-domain books and
Wikipedia (`make pretrained-english`), the start of `train --from english`; `shakespeare/` a
char-level LSTM trained on Tiny Shakespeare (`make pretrained`); `sentiment/` a
negative/positive classifier on a review language model's core (`make pretrained-sentiment`).
Wherever a command takes a model, these names work too (`resolve_model`). Weights are stored as
fp16 and upcast to fp32 on load; each `config.json` gives the shape, BENCHMARKS.md the training
time and scores.
"""

from __future__ import annotations

from pathlib import Path

from lstmtext.errors import CheckpointError

PRETRAINED = Path(__file__).resolve().parent
ENGLISH = "english"
SHAKESPEARE = "shakespeare"
SENTIMENT = "sentiment"
MAKE_TARGETS = {ENGLISH: "pretrained-english", SHAKESPEARE: "pretrained", SENTIMENT: "pretrained-sentiment"}
FILES = ("config.json", "tokenizer.json", "model.safetensors")


def _installed(name: str, what: str) -> Path:
    """The folder of the embedded model `name`, once every file of it is there."""
    directory = PRETRAINED / name
    missing = [file for file in FILES if not (directory / file).is_file()]
    if missing:
        raise CheckpointError(
            f"the embedded {what} is not installed ({directory} lacks {', '.join(missing)}); "
            f"build it with `make {MAKE_TARGETS[name]}` or pass --model DIR"
        )
    return directory


def default_lm_dir() -> Path:
    """The folder of the embedded general-English model, the default of `lstmtext generate`:
    a new user's first seed is English of any kind, not a play (`--model shakespeare` is)."""
    return _installed(ENGLISH, "general-English model")


def default_classifier_dir() -> Path:
    """The folder of the embedded sentiment classifier, the default of `lstmtext classify`."""
    return _installed(SENTIMENT, "sentiment model")


def resolve_model(value: str | Path) -> Path:
    """A model folder given by path or by an embedded model's name; a folder of that name in
    the working directory wins over the embedded model."""
    path = Path(value)
    name = str(value)
    if path.exists() or name not in MAKE_TARGETS:
        return path
    return _installed(name, f"model {name!r}")


def embedded_name(path: Path) -> str | None:
    """The embedded model's name when `path` is its folder, else None."""
    try:
        resolved = Path(path).resolve()
    except OSError:
        return None
    return resolved.name if resolved.parent == PRETRAINED and resolved.name in MAKE_TARGETS else None
