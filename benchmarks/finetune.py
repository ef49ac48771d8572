"""Fine-tuning on small text: held-out bits per byte from scratch against `train --from english`.

    python -m benchmarks --only finetune [--quick]
    python -m benchmarks.finetune --minutes 2 5 20 --corpora kipling_verse grimm_tales --json

Each corpus of ../shared/corpora/small/ (train.txt, valid.txt) and 100 KB and 1 MB slices of Tiny
Shakespeare (trained on the slice of its first 90 %, scored on its last 10 %) is trained for
each budget of wall-clock minutes twice through the CLI, as a user would: from scratch with the
default recipe (`lstmtext train CORPUS`) and from the embedded general-English model
(`lstmtext train CORPUS --from english`, fine-tuning's defaults). Both are scored with
`lstmtext evaluate --json` on the held-out text in bits per UTF-8 byte, comparable across
tokenizers; the English model's zero-shot figure comes first. --quick: two corpora, 30 s each.
The full form's budgets add up to 5.4 hours of training (6 corpora x 2 starts x 27 minutes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import main_in_scratch, result

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"
SMALL = ("kipling_verse", "alcott_letters", "grimm_tales", "werkzeug_code")
SHAKESPEARE_SLICES = {"shakespeare_100k": 100_000, "shakespeare_1m": 1_000_000}
CORPORA = (*SMALL, *SHAKESPEARE_SLICES)


def corpus_files(name: str, folder: Path) -> tuple[Path, Path]:
    """(train, valid) of a named corpus; Shakespeare's slices are written into `folder`."""
    if name in SMALL:
        return SHARED / "small" / name / "train.txt", SHARED / "small" / name / "valid.txt"
    text = (SHARED / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    split = int(len(text) * 0.9)
    train, valid = folder / f"{name}.train.txt", folder / f"{name}.valid.txt"
    train.write_text(text[: min(split, SHAKESPEARE_SLICES[name])], encoding="utf-8")
    valid.write_text(text[split:], encoding="utf-8")
    return train, valid


def lstmtext(*args: str) -> str:
    done = subprocess.run(["lstmtext", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"lstmtext {' '.join(args[:3])} ...: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout


def bits_per_byte(model: str | Path, valid: Path) -> float:
    return float(json.loads(lstmtext("evaluate", "-m", str(model), str(valid), "--json"))["bits_per_byte"])


def train(train_file: Path, valid: Path, out: Path, minutes: float, extra: list[str]) -> float:
    lstmtext("train", str(train_file), "--val", str(valid), "--out", str(out), "--overwrite",
             "--max-time", str(minutes), "--patience", "0", "--threads", "2", *extra)  # fmt: skip
    return bits_per_byte(out, valid)


def measure(corpora: list[str], budgets: list[float], folder: Path) -> list[dict[str, Any]]:
    rows = []
    for name in corpora:
        train_file, valid = corpus_files(name, folder)
        zero_shot = bits_per_byte("english", valid)
        rows.append(result(f"finetune {name}: english zero-shot", zero_shot, "bits/byte"))
        for minutes in budgets:
            scratch = train(train_file, valid, folder / "scratch", minutes, [])
            tuned = train(train_file, valid, folder / "tuned", minutes, ["--from", "english"])
            rows.append(
                result(
                    f"finetune {name}: {minutes:g} min from english",
                    tuned,
                    "bits/byte",
                    baseline=f"{minutes:g} min from scratch",
                    baseline_value=scratch,
                )
            )
            print(f"{name} {minutes:g} min: scratch {scratch:.4f}, from english {tuned:.4f}, "
                  f"zero-shot {zero_shot:.4f} bits/byte", file=sys.stderr, flush=True)  # fmt: skip
    return rows


def run(quick: bool) -> list[dict[str, Any]]:
    corpora = ["grimm_tales", "werkzeug_code"] if quick else list(CORPORA)
    with tempfile.TemporaryDirectory() as folder:
        return measure(corpora, [0.5] if quick else [2.0, 5.0, 20.0], Path(folder))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.finetune", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--corpora", nargs="+", choices=CORPORA, default=list(CORPORA))
    parser.add_argument("--minutes", nargs="+", type=float, default=[2.0, 5.0, 20.0])
    parser.add_argument("--json", action="store_true", help="one JSON object per row on stdout")
    args = parser.parse_args(argv)
    return main_in_scratch(lambda folder: measure(args.corpora, args.minutes, folder), args.json)


if __name__ == "__main__":
    sys.exit(main())
