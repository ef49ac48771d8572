"""Copy a trained run into the package as an embedded model, with fp16 weights.

    python -m lstmtext.pretrained.build runs/shakespeare-pretrained lstmtext/pretrained/shakespeare
    python -m lstmtext.pretrained.build runs/english lstmtext/pretrained/english
    python -m lstmtext.pretrained.build runs/sentiment lstmtext/pretrained/sentiment
    python -m lstmtext.pretrained.build runs/sentiment lstmtext/pretrained/sentiment \
        --calibrate runs/sentiment-data/val.tsv

Writes config.json, tokenizer.json and model.safetensors (weights stored as fp16, which
halves the size; loading casts them back to the model's fp32), then loads the result as a
checkpoint to prove it whole, and refuses a model over the size limit of its kind
(language model or classifier, read from its config.json).

A classifier keeps the temperature its training fitted (config.json). With --calibrate
FILE..., the temperature is fitted anew on that held-out labelled data with the weights as
shipped (fp16), by lstmtext.classifier.calibrate.calibrate: for a run trained before temperatures
existed, or to calibrate on other data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from lstmtext.errors import CheckpointError, LstmTextError
from lstmtext.runs import checkpoint as ckpt

MAX_BYTES = 10 * 1000 * 1000  # what the package may carry
MAX_CLASSIFIER_BYTES = 20 * 1000 * 1000  # the embedded sentiment model
MAX_ENGLISH_BYTES = 25 * 1000 * 1000  # the general-English model: a BPE vocabulary's rows cost more
LIMITS = {"lm": MAX_BYTES, "classify": MAX_CLASSIFIER_BYTES}


def build(run_dir: Path, out_dir: Path, max_bytes: int | None = None) -> int:
    """Write the embedded model from `run_dir` (its best weights) into `out_dir`; its size in bytes."""
    task = ckpt.read_config(run_dir).model.task
    if max_bytes is None:
        max_bytes = MAX_ENGLISH_BYTES if out_dir.name == "english" else LIMITS[task]
    source = ckpt.load_checkpoint(run_dir, task=task)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt.atomic_write_text(out_dir / ckpt.CONFIG, (run_dir / ckpt.CONFIG).read_text(encoding="utf-8"))
    ckpt.atomic_write_text(out_dir / ckpt.TOKENIZER, source.tokenizer.to_str())
    ckpt.save_weights(source.model, out_dir / ckpt.WEIGHTS, dtype=torch.float16)
    size = sum((out_dir / name).stat().st_size for name in (ckpt.CONFIG, ckpt.TOKENIZER, ckpt.WEIGHTS))
    if size > max_bytes:
        raise CheckpointError(
            f"the embedded model is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit"
        )
    ckpt.load_checkpoint(out_dir, task=task)
    return size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lstmtext.pretrained.build", description=__doc__.splitlines()[0]
    )
    parser.add_argument("run_dir", type=Path, help="trained run directory (a checkpoint)")
    parser.add_argument(
        "out_dir", type=Path, help="package folder to write, e.g. lstmtext/pretrained/shakespeare"
    )
    parser.add_argument(
        "--calibrate",
        type=Path,
        nargs="+",
        metavar="FILE",
        help="a classifier: fit its temperature on this held-out labelled data (not train, not test)",
    )
    parser.add_argument(
        "--max-per-file", type=int, help="with --calibrate: a fixed random sample of each file"
    )
    args = parser.parse_args(argv)
    try:
        size = build(args.run_dir, args.out_dir)
        if args.calibrate:
            from lstmtext.classifier.calibrate import calibrate

            fitted = calibrate(args.out_dir, args.calibrate, max_per_file=args.max_per_file)
            print(
                f"{args.out_dir}: temperature {fitted.temperature:.4f} on {fitted.count} texts "
                f"(ECE {fitted.ece_before:.4f} -> {fitted.ece_after:.4f})",
                file=sys.stderr,
            )
    except LstmTextError as error:
        print(f"build: error: {error}", file=sys.stderr)
        return 1
    print(f"{args.out_dir}: {size / 1e6:.2f} MB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
