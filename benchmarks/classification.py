"""Classification throughput: IMDb-length reviews per second, end to end through `Predictor`.

    python -m benchmarks.classification [--quick] [--json] [--model DIR]

Each pass labels the same reviews the way `lstmtext classify` does: tokenise, sort by
length into batches of about 32K padded tokens (at most 128 reviews), run the classifier,
softmax. The reviews are a fixed random sample of IMDb test (the issue's "IMDb-length":
about 230 words, 1,300 characters on average, with its long tail), or English-like text
of that length when ../shared/corpora is absent. The model is the embedded sentiment model
when it is built; else a classifier of its recipe's shape with random weights (speed does
not depend on them) and a BPE tokenizer trained on the sample.

Rows: fp32 and bf16 reviews/s, timed interleaved in the same run (bf16 as a ratio to fp32);
fp32 against the target of 500 reviews/s (two cores); and tokenisation alone.
`run(quick)` returns the rows for the benchmark runner.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

from benchmarks import Interleaved, cpu_model, result, synthetic_text
from lstmtext.classifier.predict import Predictor, encode_texts
from lstmtext.config import ModelConfig, RunConfig, TokenizerConfig
from lstmtext.core.model import Classifier
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.device import cpu_has_fast_bf16
from lstmtext.pretrained import PRETRAINED, SENTIMENT

IMDB_TEST = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "imdb" / "test.tsv"
TARGET = 500.0  # reviews per second in fp32 on two cores
# The shape of `make pretrained-sentiment`, for when the embedded model is not built.
RECIPE_SHAPE = {"embedding_dim": 128, "hidden_size": 256, "num_layers": 1}
RECIPE_VOCAB = 12000


def reviews(count: int, seed: int = 0) -> tuple[list[str], str]:
    """`count` IMDb test reviews drawn at random, or synthetic ones of IMDb's mean length."""
    if IMDB_TEST.exists():
        lines = IMDB_TEST.read_text(encoding="utf-8").splitlines()
        sample = random.Random(seed).sample(lines, count)
        return [line.split("\t", 1)[1] for line in sample], "IMDb test sample"
    rng = random.Random(seed)
    texts = [synthetic_text(rng.randint(400, 2600), seed=seed + i).replace("\n", " ") for i in range(count)]
    return texts, "synthetic IMDb-length text"


def load_model(model_dir: Path | None, texts: list[str]) -> tuple[Classifier, TextTokenizer, RunConfig, str]:
    directory = model_dir or PRETRAINED / SENTIMENT
    if (directory / "model.safetensors").exists():
        predictor = Predictor.load(directory)
        return predictor.model, predictor.tokenizer, predictor.config, str(directory)
    tokenizer = TextTokenizer.train(texts, TokenizerConfig("bpe", vocab_size=RECIPE_VOCAB))
    torch.manual_seed(0)
    model_config = ModelConfig(
        vocab_size=tokenizer.vocab_size, task="classify", num_classes=2, dropout=0.0, **RECIPE_SHAPE
    )
    config = RunConfig(
        tokenizer=TokenizerConfig("bpe", vocab_size=RECIPE_VOCAB),
        model=model_config,
        labels=("negative", "positive"),
    )
    return Classifier(model_config).eval(), tokenizer, config, "random weights, recipe shape"


def run(quick: bool, model_dir: Path | None = None) -> list[dict]:
    count, rounds = (256, 3) if quick else (1024, 5)
    texts, source = reviews(count)
    model, tokenizer, config, which = load_model(model_dir, texts)
    precisions = ["fp32", "bf16"] if cpu_has_fast_bf16() else ["fp32"]
    predictors = {p: Predictor(model, tokenizer, config, device="cpu", precision=p) for p in precisions}

    def variant(predictor: Predictor):
        def timed_passes(passes: int) -> float:
            started = time.perf_counter()
            for _ in range(passes):
                predictor.probabilities(texts)
            return (time.perf_counter() - started) / passes

        return timed_passes

    bench = Interleaved({p: variant(predictors[p]) for p in precisions})
    bench.run(rounds=rounds, steps=1, warmup=1)
    shape = (
        f"{config.model.num_layers}x{config.model.hidden_size}, embedding {config.model.embedding_dim}, "
        f"{config.tokenizer.level} {tokenizer.vocab_size}"
    )
    note = f"{count} reviews ({source}), {shape}, {which}, {torch.get_num_threads()} threads"
    fp32 = bench.per_second("fp32", count)
    rows = [result(f"classify fp32 [{note}]", fp32, "reviews/s")]
    if "bf16" in precisions:
        bf16 = bench.per_second("bf16", count)
        rows.append(result("classify bf16", bf16, "reviews/s", "fp32", fp32, bench.ratio("bf16", "fp32")))
    rows.append(result("classify fp32 vs target", fp32, "reviews/s", "target", TARGET))
    started = time.perf_counter()
    encode_texts(tokenizer, texts)
    rows.append(result("tokenise only", count / (time.perf_counter() - started), "reviews/s"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.classification", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--quick", action="store_true", help="256 reviews, 3 rounds")
    parser.add_argument("--json", action="store_true", help="one JSON object per row on stdout")
    parser.add_argument("--model", type=Path, help="classifier to time (default: the embedded model)")
    args = parser.parse_args(argv)
    print(
        f"CPU: {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads", file=sys.stderr
    )
    for row in run(args.quick, args.model):
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            ratio = "" if row["ratio"] is None else f"  ({row['ratio']:.3f}x {row['baseline']})"
            print(f"{row['name']}: {row['value']:,.1f} {row['unit']}{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
