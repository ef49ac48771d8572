"""The exported ONNX step in onnxruntime, fp32 and dynamic int8, against PyTorch: speed and accuracy.

    python -m benchmarks.export_speed --model runs/shakespeare [--text FILE] [--threads 1] [--quick]

Speed, timed interleaved (benchmarks.Interleaved) with ratios against PyTorch eager in the
same run:
- `sampling`: B=1, T=1 calls with the state carried and fed back, what generation does per token;
- `prompt`: one call on a batch of B=8 rows of T=256 tokens (a batched forward, as in evaluation).

Accuracy on held-out text (the last tokens of --text, run as one row in chunks of 256 with
the state carried): loss per token of each runtime, the largest |logit| difference from
PyTorch, and how often the int8 model's top token is PyTorch's.

Without --model, a char LSTM of the default shape (2 x 512, embedding 128) with random
weights stands in: its speeds are real, its losses mean nothing.
`run(quick)` returns the rows for `python -m benchmarks`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import Interleaved, cpu_model, result, synthetic_text
from lstmtext.config import ModelConfig, RunConfig, TokenizerConfig
from lstmtext.core.model import LanguageModel
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.runs import checkpoint as ckpt
from lstmtext.runs.export import ExportOptions, export_model

CHUNK = 256
PROMPT_ROWS = 8


def _stand_in(directory: Path, text: str) -> Path:
    tokenizer = TextTokenizer.train([text], TokenizerConfig("char"))
    torch.manual_seed(0)
    model = LanguageModel(ModelConfig(tokenizer.vocab_size, embedding_dim=128, hidden_size=512, num_layers=2))
    ckpt.write_model_files(directory, RunConfig(TokenizerConfig("char"), model.config), tokenizer, model)
    return directory


def _held_out_text(path: Path | None) -> str:
    if path is not None:
        return path.read_text(encoding="utf-8")
    try:
        from lstmtext.corpora import resolve

        return resolve("tinyshakespeare", allow_download=False).path("text").read_text(encoding="utf-8")
    except Exception:  # noqa: BLE001 - no corpus on disk: synthetic text
        return synthetic_text(200_000)


class Runtime:
    """One way to run the step: ids (B, T), state as numpy -> logits (B, T, V), state."""

    def __init__(self, name: str, step: Callable[[np.ndarray, np.ndarray, np.ndarray], list[np.ndarray]]):
        self.name = name
        self.step = step


def _torch_runtime(model: LanguageModel) -> Runtime:
    def step(ids: np.ndarray, hidden: np.ndarray, cell: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode():
            logits, (h, c) = model(torch.from_numpy(ids), (torch.from_numpy(hidden), torch.from_numpy(cell)))
        return [logits.numpy(), h.numpy(), c.numpy()]

    return Runtime("pytorch", step)


def _onnx_runtime(name: str, path: Path, threads: int) -> Runtime:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def step(ids: np.ndarray, hidden: np.ndarray, cell: np.ndarray) -> list[np.ndarray]:
        return session.run(None, {"ids": ids, "hidden": hidden, "cell": cell})

    return Runtime(name, step)


def _sampling(runtime: Runtime, zeros: np.ndarray) -> Callable[[int], float]:
    """Seconds per token of greedy steps with the state fed back."""

    def timed(steps: int) -> float:
        ids = np.zeros((1, 1), dtype=np.int64)
        hidden = cell = zeros
        started = time.perf_counter()
        for _ in range(steps):
            logits, hidden, cell = runtime.step(ids, hidden, cell)
            ids = logits[:, -1].argmax(-1, keepdims=True).astype(np.int64)
        return (time.perf_counter() - started) / steps

    return timed


def _prompt(runtime: Runtime, ids: np.ndarray, zeros: np.ndarray) -> Callable[[int], float]:
    """Seconds per call of one (PROMPT_ROWS, CHUNK) batch."""

    def timed(calls: int) -> float:
        started = time.perf_counter()
        for _ in range(calls):
            runtime.step(ids, zeros, zeros)
        return (time.perf_counter() - started) / calls

    return timed


def _accuracy(runtime: Runtime, ids: np.ndarray, zeros: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy (nats per token) over `ids` as one row, and the logits (N, V)."""
    hidden = cell = zeros
    losses, all_logits = [], []
    for start in range(0, len(ids) - 1, CHUNK):
        inputs = ids[start : start + CHUNK][None, :]
        targets = ids[start + 1 : start + 1 + CHUNK]
        inputs = inputs[:, : len(targets)]
        logits, hidden, cell = runtime.step(inputs, hidden, cell)
        logits = logits[0].astype(np.float64)  # (T, V)
        shifted = logits - logits.max(-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        losses.append(-log_probs[np.arange(len(targets)), targets])
        all_logits.append(logits)
    return float(np.concatenate(losses).mean()), np.concatenate(all_logits)


def measure(
    model_dir: Path | None, text_path: Path | None, threads: int, quick: bool
) -> list[dict[str, Any]]:
    torch.set_num_threads(threads)
    text = _held_out_text(text_path)
    with tempfile.TemporaryDirectory(prefix="lstmtext-export-bench-") as scratch:
        root = Path(scratch)
        model_dir = model_dir or _stand_in(root / "stand-in", text)
        checkpoint = ckpt.load_checkpoint(model_dir, task="lm")
        model = checkpoint.model
        assert isinstance(model, LanguageModel)
        fp32 = export_model(model_dir, root / "fp32", ExportOptions("onnx")).model_path
        int8 = export_model(model_dir, root / "int8", ExportOptions("onnx", quantize="int8")).model_path
        runtimes = [
            _torch_runtime(model),
            _onnx_runtime("onnx-fp32", fp32, threads),
            _onnx_runtime("onnx-int8", int8, threads),
        ]
        config = model.config
        zeros1 = np.zeros((config.num_layers, 1, config.hidden_size), dtype=np.float32)
        zeros_batch = np.zeros((config.num_layers, PROMPT_ROWS, config.hidden_size), dtype=np.float32)
        ids = checkpoint.tokenizer.encode_array(text).astype(np.int64)
        held_out = ids[-(5_000 if quick else 30_000) :]
        prompt = np.resize(held_out, PROMPT_ROWS * CHUNK).reshape(PROMPT_ROWS, CHUNK)
        rounds = 3 if quick else 7
        sampling = Interleaved({r.name: _sampling(r, zeros1) for r in runtimes})
        sampling.run(rounds=rounds, steps=100 if quick else 400)
        prompts = Interleaved({r.name: _prompt(r, prompt, zeros_batch) for r in runtimes})
        prompts.run(rounds=rounds, steps=2 if quick else 5)
        sizes = {"pytorch": (model_dir / ckpt.WEIGHTS).stat().st_size, "onnx-fp32": fp32.stat().st_size}
        sizes["onnx-int8"] = int8.stat().st_size
        accuracy = {r.name: _accuracy(r, held_out, zeros1) for r in runtimes}

    rows = []
    base_loss, base_logits = accuracy["pytorch"]
    for runtime in runtimes:
        name = runtime.name
        if name != "pytorch":
            rows.append(
                result(f"export {name} sampling", sampling.per_second(name, 1), "tokens/s", "pytorch",
                       sampling.per_second("pytorch", 1), sampling.ratio(name, "pytorch"))
            )  # fmt: skip
            rows.append(
                result(f"export {name} prompt {PROMPT_ROWS}x{CHUNK}", prompts.per_second(name, prompt.size),
                       "tokens/s", "pytorch", prompts.per_second("pytorch", prompt.size),
                       prompts.ratio(name, "pytorch"))
            )  # fmt: skip
        if name == "onnx-int8":  # the quantisation alone: int8 against fp32, both in onnxruntime
            rows.append(
                result("export onnx-int8 sampling vs fp32", sampling.per_second(name, 1), "tokens/s",
                       "onnx-fp32", sampling.per_second("onnx-fp32", 1), sampling.ratio(name, "onnx-fp32"))
            )  # fmt: skip
            rows.append(
                result(f"export onnx-int8 prompt {PROMPT_ROWS}x{CHUNK} vs fp32",
                       prompts.per_second(name, prompt.size), "tokens/s", "onnx-fp32",
                       prompts.per_second("onnx-fp32", prompt.size),
                       prompts.ratio(name, "onnx-fp32"))
            )  # fmt: skip
        loss, logits = accuracy[name]
        rows.append(result(f"export {name} held-out loss", loss, "nats/token", "pytorch", base_loss))
        if name != "pytorch":
            rows.append(
                result(f"export {name} max |logit - pytorch|", float(np.abs(logits - base_logits).max()), "")
            )
            agree = float((logits.argmax(-1) == base_logits.argmax(-1)).mean())
            rows.append(result(f"export {name} top-1 agrees with pytorch", agree, "fraction"))
        rows.append(
            result(f"export {name} file size", sizes[name] / 1e6, "MB", "pytorch", sizes["pytorch"] / 1e6)
        )
    return rows


def run(quick: bool) -> list[dict[str, Any]]:
    return measure(None, None, threads=torch.get_num_threads(), quick=quick)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.export_speed", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model", type=Path, help="LM checkpoint (default: a random stand-in of 2 x 512)")
    parser.add_argument("--text", type=Path, help="held-out text (default: Tiny Shakespeare if on disk)")
    parser.add_argument("--threads", type=int, default=1, help="threads for PyTorch and onnxruntime")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and tokens")
    parser.add_argument("--json", action="store_true", help="one JSON object per row on stdout")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = measure(args.model, args.text, args.threads, args.quick)
    print(f"CPU: {cpu_model()}; torch {torch.__version__}; {args.threads} thread(s)", file=sys.stderr)
    for row in rows:
        if args.json:
            print(json.dumps(row))
        else:
            ratio = "" if row["ratio"] is None else f"  ratio {row['ratio']:.3f} vs {row['baseline']}"
            if row["baseline_value"] is not None and row["baseline"]:
                ratio += f" ({row['baseline_value']:.5g})"
            print(f"{row['name']:<48} {row['value']:>12.5g} {row['unit']}{ratio}")
    print(f"total {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
