"""Generation speed: the fast inference step against per-token nn.LSTM and against its floor.

    python -m benchmarks.generation [--quick] [--json]
    python -m benchmarks.generation --loss MODEL_DIR TEXT_FILE   # fp32 vs bf16 step, held-out loss

A 2x512 char model (embedding 128, vocabulary 65, random weights: speed does not depend on
them). Every figure is tokens per second of the sampling loop (step + sample, no decoding),
each timed against its baseline in the same run, interleaved round by round, median of
the rounds:

- batch 1, 1 thread: fast step vs nn.LSTM called once per token under inference_mode;
  fast step vs the floor (the step's matrix products alone, in a tight loop);
- batch 1, bf16 matrices: its floor and its step vs the fp32 floor;
- batch 1 on 2 threads vs 1 thread;
- batch 32 (--num-samples 32), torch's threads: aggregate tokens/s vs nn.LSTM batched.

`run(quick)` returns the rows for the benchmark runner.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch

from lstmtext.config import ModelConfig
from lstmtext.inference import InferenceStep, bf16_available
from lstmtext.model import LanguageModel
from lstmtext.sample import sample_next

VOCAB, EMBED, HIDDEN, LAYERS = 65, 128, 512, 2


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def build_model() -> LanguageModel:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=VOCAB, embedding_dim=EMBED, hidden_size=HIDDEN, num_layers=LAYERS)
    return LanguageModel(config).eval()


# Each maker returns a function that runs `tokens` steps and returns the tokens made.


def fast_loop(step: InferenceStep, batch: int) -> Callable[[int], int]:
    state = step.new_state(batch)
    generator = torch.Generator().manual_seed(0)
    ids = torch.zeros(batch, dtype=torch.long)

    def run(tokens: int) -> int:
        nonlocal ids
        for _ in range(tokens):
            ids = sample_next(step.step(ids, state), generator=generator)
        return tokens * batch

    return run


def lstm_loop(model: LanguageModel, batch: int) -> Callable[[int], int]:
    generator = torch.Generator().manual_seed(0)
    holder: dict[str, object] = {"ids": torch.zeros(batch, 1, dtype=torch.long), "state": None}

    def run(tokens: int) -> int:
        with torch.inference_mode():
            ids, state = holder["ids"], holder["state"]
            for _ in range(tokens):
                logits, state = model(ids, state)  # (B, 1, V)
                ids = sample_next(logits[:, -1], generator=generator)[:, None]
            holder["ids"], holder["state"] = ids, state
        return tokens * batch

    return run


def floor_loop(step: InferenceStep) -> Callable[[int], int]:
    """The fp32 step's matrix-vector products alone, same shapes, into preallocated outputs."""
    h = HIDDEN
    hidden = torch.zeros(1, LAYERS * h)
    gates = torch.empty(1, 4 * h)
    logits = torch.empty(1, VOCAB)
    inputs = [hidden[:, :h]] + [hidden[:, (i - 1) * h : (i + 1) * h] for i in range(1, LAYERS)]

    def run(tokens: int) -> int:
        with torch.inference_mode():
            for _ in range(tokens):
                for x, w in zip(inputs, step.weights, strict=True):
                    torch.mm(x, w, out=gates)
                torch.mm(hidden[:, -h:], step.head_weight, out=logits)
        return tokens

    return run


def bf16_floor_loop(step: InferenceStep) -> Callable[[int], int]:
    h = HIDDEN
    hidden = torch.zeros(1, LAYERS * h, dtype=torch.bfloat16)
    inputs = [hidden[:, :h]] + [hidden[:, (i - 1) * h : (i + 1) * h] for i in range(1, LAYERS)]

    def run(tokens: int) -> int:
        with torch.inference_mode():
            for _ in range(tokens):
                for x, product in zip(inputs, step.packed, strict=True):
                    product(x)
                step.packed_head(hidden[:, -h:])
        return tokens

    return run


def with_threads(threads: int, run: Callable[[int], int]) -> Callable[[int], int]:
    def wrapped(tokens: int) -> int:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return run(tokens)
        finally:
            torch.set_num_threads(previous)

    return wrapped


def interleave(loops: dict[str, tuple[Callable[[int], int], int]], rounds: int) -> dict[str, float]:
    """Median tokens/s of each loop over `rounds`, the loops taking turns within each round."""
    for run, tokens in loops.values():  # warm-up: caches, allocator, oneDNN kernels
        run(max(1, tokens // 10))
    rates: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(rounds):
        for name, (run, tokens) in loops.items():
            start = time.perf_counter()
            made = run(tokens)
            rates[name].append(made / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


def row(name: str, value: float, baseline: str, baseline_value: float) -> dict[str, object]:
    return {
        "name": name,
        "value": round(value, 1),
        "unit": "tokens/s",
        "baseline": baseline,
        "baseline_value": round(baseline_value, 1),
        "ratio": round(value / baseline_value, 3),
    }


def run(quick: bool = False) -> list[dict[str, object]]:
    model = build_model()
    fp32 = InferenceStep(model)
    rounds = 3 if quick else 7
    n1, n32 = (300, 30) if quick else (1500, 150)
    loops: dict[str, tuple[Callable[[int], int], int]] = {
        "fast": (with_threads(1, fast_loop(fp32, 1)), n1),
        "lstm": (with_threads(1, lstm_loop(model, 1)), max(50, n1 // 8)),
        "floor": (with_threads(1, floor_loop(fp32)), n1),
        "fast_2threads": (with_threads(2, fast_loop(fp32, 1)), n1),
    }
    has_bf16 = bf16_available()
    if has_bf16:
        bf16 = InferenceStep(model, precision="bf16")
        loops["bf16_fast"] = (with_threads(1, fast_loop(bf16, 1)), n1)
        loops["bf16_floor"] = (with_threads(1, bf16_floor_loop(bf16)), n1)
    b1 = interleave(loops, rounds)

    batched = {
        "fast32": (fast_loop(fp32, 32), n32),
        "lstm32": (lstm_loop(model, 32), n32),
    }
    if has_bf16:
        batched["bf16_fast32"] = (fast_loop(bf16, 32), n32)
    b32 = interleave(batched, rounds)

    rows = [
        row("generate b1 fast step, 1 thread", b1["fast"], "nn.LSTM per token, 1 thread", b1["lstm"]),
        row("generate b1 fast step, 1 thread", b1["fast"], "floor: its matrix products alone", b1["floor"]),
        row("generate b1 fast step, 2 threads", b1["fast_2threads"], "same, 1 thread", b1["fast"]),
        row("generate b32 fast step (aggregate)", b32["fast32"], "nn.LSTM batched per token", b32["lstm32"]),
    ]
    if has_bf16:
        rows += [
            row("generate b1 bf16 floor", b1["bf16_floor"], "fp32 floor", b1["floor"]),
            row("generate b1 bf16 fast step", b1["bf16_fast"], "fp32 floor", b1["floor"]),
            row("generate b1 bf16 fast step", b1["bf16_fast"], "fp32 fast step", b1["fast"]),
            row("generate b32 bf16 fast step (aggregate)", b32["bf16_fast32"], "fp32 fast step", b32["fast32"]),
        ]
    return rows


def held_out_loss(model_dir: Path, text_file: Path, tokens: int = 20000) -> dict[str, float]:
    """Mean loss (nats/token) of the fp32 and bf16 steps on the first `tokens` of a text."""
    from lstmtext.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(model_dir, task="lm")
    assert isinstance(checkpoint.model, LanguageModel)
    ids = torch.tensor(checkpoint.tokenizer.encode(text_file.read_text(encoding="utf-8"))[: tokens + 1])
    result = {"tokens": float(len(ids) - 1)}
    with torch.inference_mode():
        logits, _ = checkpoint.model(ids[None, :-1])
        result["core"] = torch.nn.functional.cross_entropy(logits[0], ids[1:]).item()
    for precision in ("fp32", "bf16"):
        step = InferenceStep(checkpoint.model, precision=precision)
        state = step.new_state(1)
        total = 0.0
        for t in range(len(ids) - 1):
            logits = step.step(ids[t : t + 1], state)
            total += torch.nn.functional.cross_entropy(logits, ids[t + 1 : t + 2]).item()
        result[precision] = total / (len(ids) - 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="Generation speed benchmark.")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and tokens")
    parser.add_argument("--json", action="store_true", help="rows as JSON")
    parser.add_argument("--loss", nargs=2, metavar=("MODEL_DIR", "TEXT_FILE"), help="fp32 vs bf16 held-out loss")
    args = parser.parse_args()
    if args.loss:
        result = held_out_loss(Path(args.loss[0]), Path(args.loss[1]))
        print(json.dumps({**result, "cpu": cpu_model()}, indent=1))
        return
    rows = run(quick=args.quick)
    if args.json:
        print(json.dumps({"cpu": cpu_model(), "rows": rows}, indent=1))
        return
    print(f"# {cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} threads by default")
    for r in rows:
        print(
            f"{r['name']:42s} {r['value']:>9,.0f} {r['unit']}  vs {r['baseline']:34s} "
            f"{r['baseline_value']:>9,.0f}  x{r['ratio']:.2f}"
        )
    assert all(math.isfinite(float(r["value"])) for r in rows)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
