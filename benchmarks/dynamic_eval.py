"""Dynamic evaluation of a trained language model: pick the rate and decay on validation text, then score.

    python -m benchmarks.dynamic_eval --model runs/ptb --valid ptb/valid.txt --test ptb/test.txt \
        [--tune-tokens 20000] [--rates 0.01,0.03,0.1] [--decays 0,0.01] [--seq-len 20]

Every (rate, decay) pair scores the first --tune-tokens tokens of the validation text; the
best pair then scores the test text (without --test: the validation text past the tuned
part; with --full-valid, the whole validation text too), beside the static loss (plain
`lstmtext evaluate`, one stream). One JSON line per measurement on stdout, a Markdown table
on stderr. The test text is read once, with the pair the validation picked.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lstmtext.core.model import LanguageModel
from lstmtext.data.corpus import TokenStream
from lstmtext.data.sources import read_text
from lstmtext.lm.dynamic_eval import DynamicEvaluation, dynamic_loss
from lstmtext.lm.task import evaluate_stream
from lstmtext.runs.checkpoint import load_checkpoint


def floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part]


def score(
    model: LanguageModel, ids: np.ndarray, seq_len: int, dynamic: DynamicEvaluation | None
) -> tuple[float, float]:
    """(loss in nats per token, seconds), one stream."""
    stream = TokenStream(ids, 1, seq_len)
    device = torch.device("cpu")
    start = time.perf_counter()
    if dynamic is None:
        loss, _ = evaluate_stream(model, stream, device)
    else:
        loss, _ = dynamic_loss(model, stream, device, dynamic)
    return loss, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--valid", required=True)
    parser.add_argument("--test")
    parser.add_argument("--tune-tokens", type=int, default=20_000)
    parser.add_argument("--rates", type=floats, default=[0.003, 0.01, 0.03, 0.1])
    parser.add_argument("--decays", type=floats, default=[0.0, 0.01])
    parser.add_argument("--seq-len", type=int, default=20)
    parser.add_argument("--full-valid", action="store_true", help="also score the whole validation text")
    args = parser.parse_args(argv)

    checkpoint = load_checkpoint(args.model, task="lm", device="cpu")
    model = checkpoint.model
    assert isinstance(model, LanguageModel)
    encode = checkpoint.tokenizer.encode_array
    valid = encode(read_text([args.valid]))
    tune = valid[: args.tune_tokens + 1]
    rows: list[dict[str, object]] = []

    def report(name: str, text: str, dynamic: DynamicEvaluation | None, ids: np.ndarray) -> float:
        loss, seconds = score(model, ids, args.seq_len, dynamic)
        row = {
            "name": name,
            "text": text,
            "tokens": len(ids) - 1,
            "rate": dynamic.learning_rate if dynamic else 0.0,
            "decay": dynamic.decay if dynamic else 0.0,
            "loss": loss,
            "perplexity": math.exp(loss),
            "seconds": round(seconds, 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        return loss

    report("static", "tune", None, tune)
    best: tuple[float, DynamicEvaluation] | None = None
    for rate in args.rates:
        for decay in args.decays:
            dynamic = DynamicEvaluation(rate, decay)
            loss = report("dynamic", "tune", dynamic, tune)
            if math.isfinite(loss) and (best is None or loss < best[0]):
                best = (loss, dynamic)
    assert best is not None
    chosen = best[1]
    if args.test is not None:
        scored = {"test": encode(read_text([args.test]))}
    else:  # no test text: the validation text past the part the pair was picked on
        scored = {"valid after the tuned part": valid[args.tune_tokens :]}
    if args.full_valid:
        scored["valid"] = valid
    for text, ids in scored.items():
        report("static", text, None, ids)
        report("dynamic", text, chosen, ids)

    lines = [
        "| text | tokens | rate | decay | loss | perplexity | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['text']} ({row['name']}) | {row['tokens']:,} | {row['rate']:g} | {row['decay']:g} "
            f"| {row['loss']:.4f} | {row['perplexity']:.2f} | {row['seconds']} |"
        )
    print("\n".join(lines), file=sys.stderr)


if __name__ == "__main__":
    main()
