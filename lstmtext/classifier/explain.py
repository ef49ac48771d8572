"""Why did the classifier say that: each token's contribution to its verdict.

Integrated gradients (Sundararajan, Taly and Yan 2017, "Axiomatic Attribution for Deep
Networks") over the token embeddings. The function explained is the calibrated log-odds of
the predicted class c,

    f(z) = z_c / T - logsumexp_{j != c} (z_j / T)        (two classes: (z_c - z_other) / T)

of the logits z the model gives to the embedded text x. Along the straight line from a
baseline x' (the zero embedding: no token at all, the same at every position, so the model
still reads T steps and only what the tokens carry is attributed) to x, the gradient of f
is integrated by the trapezoid rule over `steps` intervals (by default 8,192 / tokens,
between 32 and 256); token t's contribution is

    a_t = sum_e (x - x')_{t,e} * mean over the path of df/dx_{t,e}.

Completeness: sum_t a_t = f(x) - f(x') up to the error of the trapezoid rule (tested, and
reported per explanation as `completeness_gap`). A positive a_t pushes towards the predicted
class, a negative one against it; they are in nats of log-odds. The points of the path run
forward and back in a few batches (chunks of about CHUNK_TOKENS padded tokens). Where that
work is worth both cores (lstmtext.threads), the chunks are shared among worker threads,
each running its chunks on one torch thread: they never wait for each other, where one batch
on two threads hands off at each of a long review's thousands of time steps. It runs in the
predictor's precision: bf16, where the CPU accelerates it, is the faster, at no visible cost
to completeness on short texts; over a long one its values drift from fp32's, the baseline's
most (timings and gaps of a 1,000-word review: BENCHMARKS.md).

Where the path crosses a sharp change of the model's state (a long review can flip the
LSTM from one regime to another within 1/100 of the path), no affordable number of steps
integrates it exactly; `completeness_gap` then says how far off the sum is. In fp32 more
`steps` narrow it; bf16's drift they do not.

Scores per sentence are the sums of their tokens' contributions, so the sentences that carry
a long review's verdict stand out.

    explanation = explain(Predictor.load("runs/sentiment"), "Dull plot, but a moving ending.")
    [(t.start, t.end, t.score) for t in explanation.tokens]
"""

from __future__ import annotations

import math
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from torch import Tensor

from lstmtext.classifier.predict import Ensemble, Predictor
from lstmtext.core.model import Classifier
from lstmtext.device import autocast_context
from lstmtext.errors import ConfigError
from lstmtext.threads import inference_threads, torch_threads

# Steps of the path by default: about STEP_TOKENS / tokens, between MIN_STEPS and MAX_STEPS.
# A short text gets many (cheap, and on SST-2 sentences completeness within 5 % holds for 58 %
# at 32 steps, 83 % at 256), a long review 32 (its cost grows with steps x tokens).
MIN_STEPS, MAX_STEPS, STEP_TOKENS = 32, 256, 8192
# Longer texts are refused: each step of the path runs the whole text forward and backward
# (20,000 tokens: about 15 s of CPU), and classify reads such texts in windows instead.
MAX_TOKENS = 20_000
# Padded tokens per chunk of the path, by precision. On CPU a bf16 row costs little more in a
# large batch than alone, so bf16 takes few, large chunks (one per worker), at a price in
# memory; an fp32 row costs more the larger its batch, so fp32 takes small chunks.
CHUNK_TOKENS = {"bf16": 32768, "fp32": 8192}
MAX_CHARS = 1 << 20
BASELINE = "zero embedding"
# Sentence ends: . ! ? (and closing quotes or brackets) before whitespace, blank lines and line
# breaks, and the <br /> tags that IMDb reviews carry for paragraphs.
_SENTENCE_BREAK = re.compile(
    r"(?:(?<=[.!?\u2026])|(?<=[.!?\u2026][\"'\u201d\u2019)\]]))\s+|\n+|(?:\s*<br\s*/?>\s*)+"
)


@dataclass(frozen=True)
class TokenScore:
    token_id: int
    start: int  # text[start:end] is what the token stands for (see TextTokenizer.encode_with_offsets)
    end: int
    score: float  # contribution to the predicted class's log-odds: > 0 for it, < 0 against


@dataclass(frozen=True)
class SentenceScore:
    start: int
    end: int
    score: float  # the sum of its tokens' scores


@dataclass(frozen=True)
class Explanation:
    text: str
    label: str  # the predicted class
    probability: float  # its calibrated probability
    probabilities: dict[str, float]
    tokens: tuple[TokenScore, ...]
    sentences: tuple[SentenceScore, ...]
    value: float  # f at the input: the predicted class's calibrated log-odds
    baseline_value: float  # f at the baseline
    steps: int

    @property
    def completeness_gap(self) -> float:
        """sum of the contributions - (f(input) - f(baseline)); 0 for exact integration."""
        return sum(t.score for t in self.tokens) - (self.value - self.baseline_value)


def log_odds(logits: Tensor, target: int, temperature: float) -> Tensor:
    """logits (B, C) -> (B,) calibrated log-odds of class `target`."""
    scaled = logits.float() / temperature
    others = torch.cat([scaled[:, :target], scaled[:, target + 1 :]], dim=1)
    return scaled[:, target] - torch.logsumexp(others, dim=1)


def logits_from_embeddings(model: Classifier, embedded: Tensor, lengths: Tensor) -> Tensor:
    """Classifier.forward from the embedding vectors (B, T, E) on, in eval mode, where both of
    the core's dropouts and the head's are the identity; tests hold it equal to forward()."""
    outputs, _ = model.core.lstm(embedded)  # zero initial state, as LSTMCore.run starts from
    return model.head(model.pool(outputs, lengths))


def explain(
    predictor: Predictor | Ensemble,
    text: str,
    *,
    steps: int | None = None,
    max_batch_tokens: int | None = None,
) -> Explanation:
    """Integrated gradients of the predicted class's calibrated log-odds for one text, over
    `steps` intervals of the path (None: default_steps of its length), run in chunks of about
    `max_batch_tokens` padded tokens (None: CHUNK_TOKENS of the predictor's precision)."""
    if isinstance(predictor, Ensemble):
        raise ConfigError("explanations are of one classifier; give --model once")
    model, tokenizer, temperature = predictor.model, predictor.tokenizer, predictor.temperature
    if len(text) > MAX_CHARS:  # before encoding: offsets of megabytes of text take gigabytes
        raise ConfigError(f"--explain reads texts of at most {MAX_CHARS:,} characters, not {len(text):,}")
    ids, spans = tokenizer.encode_with_offsets(text)
    if len(ids) > MAX_TOKENS:
        raise ConfigError(
            f"--explain reads texts of at most {MAX_TOKENS:,} tokens; this one has {len(ids):,}"
        )
    if not ids:  # as classify does: an empty text is one <unk>
        ids, spans = [tokenizer.unk_id], [(0, len(text))]
    steps = default_steps(len(ids)) if steps is None else steps
    if steps < 1:
        raise ConfigError(f"integration steps must be at least 1, not {steps}")
    device = predictor.device
    was_training = model.training
    model.eval()
    workers = 1
    if device.type == "cpu":
        workers = predictor.threads or inference_threads(steps + 1, model.config.hidden_size, backward=True)
    if max_batch_tokens is None:
        max_batch_tokens = CHUNK_TOKENS.get(predictor.precision, CHUNK_TOKENS["fp32"])
    chunks = _chunk_count(steps + 1, max(1, max_batch_tokens // len(ids)), workers)
    try:
        # Every worker (or the caller alone) on one torch thread: see the module's docstring
        with torch_threads(1 if device.type == "cpu" else None):
            token_ids = torch.tensor([ids], device=device)
            # As `classify` runs it, so that the verdict is the one given without --explain
            with torch.no_grad(), autocast_context(predictor.precision, device):
                logits = model(token_ids, torch.tensor([len(ids)], device=device)).float()
            probabilities = torch.softmax(logits[0] / temperature, dim=-1)
            target = int(probabilities.argmax())
            embedded = model.core.embedding.weight[token_ids[0]].detach().float()  # (T, E)
            baseline = torch.zeros_like(embedded)
            gradient, values = _path_gradient(
                model, embedded, baseline, target, temperature, predictor.precision, steps, chunks, workers
            )
    finally:
        model.train(was_training)
    scores = ((embedded - baseline) * gradient).sum(dim=-1).cpu().tolist()  # (T,)
    tokens = tuple(
        TokenScore(token_id=int(i), start=s, end=e, score=float(a))
        for i, (s, e), a in zip(ids, spans, scores, strict=True)
    )
    labels = predictor.labels
    return Explanation(
        text=text,
        label=labels[target],
        probability=float(probabilities[target]),
        probabilities={label: float(p) for label, p in zip(labels, probabilities.tolist(), strict=True)},
        tokens=tokens,
        sentences=sentence_scores(text, tokens),
        value=values[1],
        baseline_value=values[0],
        steps=steps,
    )


def default_steps(tokens: int) -> int:
    return max(MIN_STEPS, min(MAX_STEPS, STEP_TOKENS // max(tokens, 1)))


def _chunk_count(points: int, rows: int, workers: int) -> int:
    """Chunks of at most `rows` points of the path, as many for each worker (equal chunks
    finish together; 17 + 16 points of a long review on two workers, not 12 + 12 + 9)."""
    chunks = max(workers, math.ceil(points / rows))
    return min(points, math.ceil(chunks / workers) * workers)


def _path_gradient(
    model: Classifier,
    embedded: Tensor,
    baseline: Tensor,
    target: int,
    temperature: float,
    precision: str,
    steps: int,
    chunks: int,
    workers: int,
) -> tuple[Tensor, tuple[float, float]]:
    """Trapezoid-rule mean of df/dx along baseline -> embedded (T, E); and (f(x'), f(x))."""
    length = embedded.shape[0]
    alphas = torch.linspace(0.0, 1.0, steps + 1, device=embedded.device)
    weights = torch.full_like(alphas, 1.0 / steps)
    weights[0] = weights[-1] = 0.5 / steps

    def chunk(alpha: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
        """alpha, weight (B,) -> sum_b weight_b * df/dx at point b (T, E), and f there (B,)."""
        # Grad mode and autocast are per thread: set here, in the thread that runs the chunk.
        with torch.enable_grad(), autocast_context(precision, embedded.device):
            path = (baseline + alpha[:, None, None] * (embedded - baseline)).requires_grad_(True)  # (B, T, E)
            lengths = torch.full((len(alpha),), length, device=embedded.device)
            logits = logits_from_embeddings(model, path, lengths).float()  # bf16 under autocast
            values = log_odds(logits, target, temperature)  # (B,)
            # The rule's weights go into the backward pass: d(sum_b w_b f_b)/d path_b = w_b df/dx there
            (grad,) = torch.autograd.grad(values @ weight, path)
        return grad.sum(dim=0), values.detach()

    pieces = list(zip(alphas.tensor_split(chunks), weights.tensor_split(chunks), strict=True))
    # cuDNN's LSTM backward refuses eval mode; the native kernel does not (CPU never uses cuDNN).
    with torch.backends.cudnn.flags(enabled=False):
        if workers == 1:
            results = [chunk(alpha, weight) for alpha, weight in pieces]
        else:
            with ThreadPoolExecutor(workers) as pool:
                results = list(pool.map(lambda piece: chunk(*piece), pieces))
    gradient = torch.stack([grad for grad, _ in results]).sum(dim=0)
    values = [chunk_values for _, chunk_values in results]
    return gradient, (values[0][0].item(), values[-1][-1].item())


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`, surrounding whitespace left out."""
    spans = []
    start = 0
    for match in [*_SENTENCE_BREAK.finditer(text), None]:
        end = match.start() if match else len(text)
        stripped = text[start:end]
        lead = len(stripped) - len(stripped.lstrip())
        trail = len(stripped.rstrip())
        if trail > lead:
            spans.append((start + lead, start + trail))
        if match:
            start = match.end()
    return spans or [(0, len(text))]


def sentence_scores(text: str, tokens: tuple[TokenScore, ...]) -> tuple[SentenceScore, ...]:
    """Each sentence's summed token scores; a token counts for the sentence its first
    non-space character is in (one in a break between sentences, for the one before)."""
    spans = sentence_spans(text)
    totals = [0.0] * len(spans)
    k = 0
    for token in sorted(tokens, key=lambda t: t.start):
        start = token.start
        while start < token.end and text[start].isspace():
            start += 1
        while k + 1 < len(spans) and spans[k + 1][0] <= start:
            k += 1
        totals[k] += token.score
    return tuple(SentenceScore(s, e, total) for (s, e), total in zip(spans, totals, strict=True))
