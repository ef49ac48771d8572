"""Generation speed: the fast inference step against per-token nn.LSTM and against its floor.

    python -m benchmarks --only generation [--quick]

A 2x512 char model (embedding 128, vocabulary 324: the 65 characters of Tiny Shakespeare
plus lstmtext's specials and byte-fallback tokens), random weights, since speed does not
depend on them. All variants run in one `Interleaved` timing, round by round, so every
ratio is against a baseline timed in the same run:

- batch 1, one thread (what `lstmtext generate` uses for one sample): the sampling loop
  (step + sample_next) with the fast step, fp32 and bf16, against the same loop over
  nn.LSTM called once per token under inference_mode; the fast step alone against the
  floor, its matrix-vector products alone with nothing else around them (fp32; bf16 with
  its own floor, and against the fp32 floor);
- batch 32 (`--num-samples 32`), torch's default threads: aggregate tokens/s of the
  sampling loop, fast step against batched nn.LSTM.

With the embedded model built (lstmtext/pretrained/shakespeare) and Tiny Shakespeare on
disk, two more rows say whether bf16 changes the samples' quality: the loss of the fp32 and
bf16 steps, token by token, on held-out text (the corpus's last 10 %, which training
validates on).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks import Interleaved, result
from lstmtext.config import ModelConfig
from lstmtext.core.inference import InferenceStep, bf16_available
from lstmtext.core.model import LanguageModel, State
from lstmtext.errors import LstmTextError
from lstmtext.lm.sample import sample_next

VOCAB, EMBED, HIDDEN, LAYERS = 324, 128, 512, 2
HELD_OUT_CHARS = 5000
SHARED_TEXT = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "tinyshakespeare" / "input.txt"


def build_model() -> LanguageModel:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=VOCAB, embedding_dim=EMBED, hidden_size=HIDDEN, num_layers=LAYERS)
    return LanguageModel(config).eval()


def on_threads(threads: int | None, run: Callable[[int], float]) -> Callable[[int], float]:
    """`run` on this many intra-op threads (None: torch's default), restored afterwards."""
    if threads is None:
        return run

    def wrapped(steps: int) -> float:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return run(steps)
        finally:
            torch.set_num_threads(previous)

    return wrapped


# Each maker returns an Interleaved variant: run(steps) -> seconds per step (B tokens).


def clock(body: Callable[[int], None]) -> Callable[[int], float]:
    def run(steps: int) -> float:
        start = time.perf_counter()
        body(steps)
        return (time.perf_counter() - start) / steps

    return run


def fast_sampling(step: InferenceStep, batch: int) -> Callable[[int], float]:
    """What `lstmtext generate` does per token, less decoding: step, then sample."""
    state = step.new_state(batch)
    generator = torch.Generator().manual_seed(0)
    ids = torch.zeros(batch, dtype=torch.long)

    def body(steps: int) -> None:
        nonlocal ids
        for _ in range(steps):
            ids = sample_next(step.step(ids, state), generator=generator)

    return clock(body)


def fast_step_only(step: InferenceStep) -> Callable[[int], float]:
    """The step alone, batch 1: the same token each time costs what any token costs."""
    state = step.new_state(1)
    ids = torch.zeros(1, dtype=torch.long)

    def body(steps: int) -> None:
        for _ in range(steps):
            step.step(ids, state)

    return clock(body)


def lstm_sampling(model: LanguageModel, batch: int) -> Callable[[int], float]:
    """The plain way: the model's forward (nn.LSTM) once per token, under inference_mode."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.zeros(batch, 1, dtype=torch.long)
    state: State | None = None

    def body(steps: int) -> None:
        nonlocal ids, state
        with torch.inference_mode():
            for _ in range(steps):
                logits, state = model(ids, state)  # (B, 1, V)
                ids = sample_next(logits[:, -1], generator=generator)[:, None]

    return clock(body)


def step_inputs(step: InferenceStep, dtype: torch.dtype) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Views of one zero buffer laid out as the step's: each layer's input, and the top layer's
    hidden state that the head reads."""
    hidden = torch.zeros(1, step.input_width + LAYERS * HIDDEN, dtype=dtype)
    inputs = [hidden[:, step._layer_input_slice(layer)] for layer in range(LAYERS)]
    return inputs, hidden[:, step._hidden_slice(LAYERS - 1)]


def fp32_floor(step: InferenceStep) -> Callable[[int], float]:
    """The fp32 step's matrix-vector products alone, same shapes and layout, preallocated outputs."""
    inputs, last = step_inputs(step, torch.float32)
    gates = torch.empty(1, 4 * HIDDEN)
    logits = torch.empty(1, VOCAB)
    products = list(zip(inputs, step.weights, strict=True))

    def body(steps: int) -> None:
        with torch.inference_mode():
            for _ in range(steps):
                for x, weight in products:
                    torch.mm(x, weight, out=gates)
                torch.mm(last, step.head_weight, out=logits)

    return clock(body)


def bf16_floor(step: InferenceStep) -> Callable[[int], float]:
    """The bf16 step's packed products alone."""
    inputs, last = step_inputs(step, torch.bfloat16)
    products = list(zip(inputs, step.packed, strict=True))

    def body(steps: int) -> None:
        with torch.inference_mode():
            for _ in range(steps):
                for x, product in products:
                    product(x)
                step.packed_head(last)

    return clock(body)


def speed_rows(quick: bool) -> list[dict[str, Any]]:
    model = build_model()
    fp32 = InferenceStep(model)
    has_bf16 = bf16_available()
    bf16 = InferenceStep(model, precision="bf16") if has_bf16 else None
    variants = {
        "lstm b1": on_threads(1, lstm_sampling(model, 1)),
        "fast b1": on_threads(1, fast_sampling(fp32, 1)),
        "step b1": on_threads(1, fast_step_only(fp32)),
        "floor b1": on_threads(1, fp32_floor(fp32)),
        "lstm b32": lstm_sampling(model, 32),
        "fast b32": fast_sampling(fp32, 32),
    }
    if bf16 is not None:
        variants |= {
            "bf16 fast b1": on_threads(1, fast_sampling(bf16, 1)),
            "bf16 step b1": on_threads(1, fast_step_only(bf16)),
            "bf16 floor b1": on_threads(1, bf16_floor(bf16)),
            "bf16 fast b32": fast_sampling(bf16, 32),
        }
    timing = Interleaved(variants)
    rounds, steps = (3, 100) if quick else (7, 600)
    timing.run(rounds, steps, warmup=20)

    def row(name: str, variant: str, baseline_label: str, baseline: str, batch: int = 1) -> dict[str, Any]:
        return result(
            f"generation.{name}",
            timing.per_second(variant, batch),
            "tokens/s",
            baseline_label,
            timing.per_second(baseline, batch),
            timing.ratio(variant, baseline),
        )

    threads = torch.get_num_threads()
    rows = [
        row("b1_fp32", "fast b1", "nn.LSTM per token (inference_mode), 1 thread", "lstm b1"),
        row("b1_fp32_step_vs_floor", "step b1", "floor: the step's fp32 matrix products alone", "floor b1"),
        row(f"b32_fp32_{threads}threads", "fast b32", "nn.LSTM batch 32 per token", "lstm b32", 32),
    ]
    if bf16 is not None:
        rows += [
            row("b1_bf16", "bf16 fast b1", "fast step fp32, 1 thread", "fast b1"),
            row(
                "b1_bf16_step_vs_fp32_floor", "bf16 step b1", "floor: fp32 matrix products alone", "floor b1"
            ),
            row(
                "b1_bf16_step_vs_bf16_floor",
                "bf16 step b1",
                "floor: bf16 matrix products alone",
                "bf16 floor b1",
            ),
            row(
                "b1_bf16_floor_vs_fp32_floor",
                "bf16 floor b1",
                "floor: fp32 matrix products alone",
                "floor b1",
            ),
            row(f"b32_bf16_{threads}threads", "bf16 fast b32", "fast step fp32 batch 32", "fast b32", 32),
        ]
    return rows


def held_out_text() -> str | None:
    """The last 10 % of Tiny Shakespeare (what training validates on), or None when it is absent."""
    path = SHARED_TEXT
    try:
        from lstmtext.corpora import resolve

        path = resolve("tinyshakespeare", allow_download=False).path("text")
    except Exception:  # noqa: BLE001 - the catalogue is optional here: fall back to ../shared
        pass
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    return text[len(text) - len(text) // 10 :]


def step_loss(step: InferenceStep, ids: torch.Tensor) -> float:
    """Mean cross-entropy (nats/token) of predicting ids[1:] token by token; ids (T,) int64."""
    logits = torch.empty(len(ids) - 1, step.vocab_size)  # (T - 1, V)
    state = step.new_state(1)
    with torch.inference_mode():
        for t in range(len(ids) - 1):
            logits[t] = step.step(ids[t : t + 1], state)[0]
        return torch.nn.functional.cross_entropy(logits, ids[1:]).item()


def loss_rows(model_dir: Path, text: str, chars: int = HELD_OUT_CHARS) -> list[dict[str, Any]]:
    """The fp32 step against the core, and the bf16 step against the fp32 one, on held-out text."""
    from lstmtext.runs.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(model_dir, task="lm")
    model = checkpoint.model
    assert isinstance(model, LanguageModel)
    ids = torch.tensor(checkpoint.tokenizer.encode(text[:chars]), dtype=torch.long)  # (T,)
    with torch.inference_mode():
        logits, _ = model(ids[None, :-1])  # (1, T - 1, V)
        core = torch.nn.functional.cross_entropy(logits[0].float(), ids[1:]).item()
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fp32 = step_loss(InferenceStep(model), ids)
        rows = [result("generation.heldout_loss_fp32_step", fp32, "nats/char", "core (nn.LSTM)", core)]
        if bf16_available():
            bf16 = step_loss(InferenceStep(model, precision="bf16"), ids)
            rows.append(result("generation.heldout_loss_bf16_step", bf16, "nats/char", "fp32 step", fp32))
    finally:
        torch.set_num_threads(previous)
    return rows


def embedded_speed_rows(quick: bool) -> list[dict[str, Any]]:
    """Characters per second of `stream` at batch 1, one thread, fp32, alternated: the
    general-English model (BPE: 3.6 bytes a token on its held-out text) against the Shakespeare
    model (a character a token)."""
    from lstmtext.lm.generate import GenerateConfig, stream
    from lstmtext.pretrained import ENGLISH, SHAKESPEARE, resolve_model
    from lstmtext.runs.checkpoint import load_checkpoint

    try:
        models = {name: load_checkpoint(resolve_model(name), task="lm") for name in (ENGLISH, SHAKESPEARE)}
    except LstmTextError:
        return []  # an embedded model is not built
    config = GenerateConfig(length=200 if quick else 1000, precision="fp32")
    chars = {name: 0 for name in models}
    seconds = {name: 0.0 for name in models}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for round_ in range(2 if quick else 5):
            for name, checkpoint in models.items():
                generator = torch.Generator().manual_seed(round_)
                started = time.perf_counter()
                text = "".join(stream(checkpoint.model, checkpoint.tokenizer, "The ", config, generator))
                seconds[name] += time.perf_counter() - started
                chars[name] += len(text)
    finally:
        torch.set_num_threads(threads)
    speed = {name: chars[name] / seconds[name] for name in models}
    return [
        result(
            "generation.embedded english b1 fp32, chars/s",
            speed[ENGLISH],
            "chars/s",
            "shakespeare, the same",
            speed[SHAKESPEARE],
        )
    ]


def run(quick: bool) -> list[dict[str, Any]]:
    rows = speed_rows(quick)
    from lstmtext.pretrained import SHAKESPEARE, resolve_model

    text = held_out_text()
    try:
        model_dir = resolve_model(SHAKESPEARE)  # the held-out text is Shakespeare's
    except LstmTextError:
        model_dir = None  # the embedded model is not built: no quality rows
    if model_dir is not None and text is not None:
        rows += loss_rows(model_dir, text, chars=1000 if quick else HELD_OUT_CHARS)
    return rows + embedded_speed_rows(quick)
