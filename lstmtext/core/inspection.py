"""Looking inside a trained LSTM: every gate of every layer, token by token, for one text.

The values come from the gate-by-gate cell (`LSTMCore.trace`) run on the trained weights,
so they are exactly what the fused model computes. On top of that record:

- `gate_saturation`: how often each sigmoid gate is left- (< 0.1) or right-saturated (> 0.9),
  the statistic of the scatter plots in Karpathy, Johnson and Fei-Fei 2015, "Visualizing and
  Understanding Recurrent Networks";
- `find_units`: units ranked by |Pearson correlation| of their activation with a 0/1
  indicator of a regular expression over the text (inside quotes, speaker names, ...);
- `top_predictions`: the language model's most likely next tokens at one position.

    inspection = inspect_text(checkpoint.model, checkpoint.tokenizer, "ROMEO:\\nBut, soft!")
    inspection.unit(layer=1, unit=7, quantity="cell")   # (T,)
    find_units(inspection, r'"[^"]*"')[0]                 # the unit that tracks quotes
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lstmtext.core.cell import GateTrace
from lstmtext.core.model import Classifier, LanguageModel
from lstmtext.core.pattern_search import match_spans
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.errors import ConfigError

# What a user may ask for, and the GateTrace field that holds it.
QUANTITIES = {
    "cell": "cell",
    "hidden": "hidden",
    "forget": "forget_gate",
    "input": "input_gate",
    "candidate": "candidate",
    "output": "output_gate",
}
SIGMOID_GATES = ("forget", "input", "output")
LEFT_SATURATED = 0.1
RIGHT_SATURATED = 0.9
# A UTF-8 character split over byte tokens needs at most 4 of them; BPE tokens may also carry
# the tail of one character and the head of the next, so allow a little more.
_MAX_BYTE_GROUP = 8


@dataclass(frozen=True)
class Inspection:
    """One text through the model. T tokens, L layers, H units per layer.

    `pieces[k]` is the text token k shows as (the pieces concatenate to `text`, the decoded
    ids); `spans[k]` is the (start, end) range of `text` token k stands for. They differ only
    where several byte tokens make one character: all of them share its span, and the last one
    shows it.
    """

    text: str
    ids: list[int]
    pieces: list[str]
    spans: list[tuple[int, int]]
    traces: list[GateTrace]  # one per layer, each field (T, H)
    logits: Tensor | None  # (T, V) next-token logits; None for a classifier
    total_tokens: int  # tokens of the whole text, more than T when cut at max_tokens

    @property
    def num_layers(self) -> int:
        return len(self.traces)

    @property
    def hidden_size(self) -> int:
        return self.traces[0].hidden.shape[-1]

    def __len__(self) -> int:
        return len(self.ids)

    def layer_index(self, layer: int) -> int:
        """`layer` checked; negative counts from the top (-1 = the last layer)."""
        if not -self.num_layers <= layer < self.num_layers:
            raise ConfigError(f"layer must be in 0..{self.num_layers - 1} (or -1 for the top), not {layer}")
        return layer % self.num_layers

    def values(self, layer: int, quantity: str) -> Tensor:
        """(T, H) activations of one quantity (see QUANTITIES) at one layer."""
        if quantity not in QUANTITIES:
            raise ConfigError(f"quantity must be one of {', '.join(QUANTITIES)}, not {quantity!r}")
        return getattr(self.traces[self.layer_index(layer)], QUANTITIES[quantity])

    def unit(self, layer: int, unit: int, quantity: str) -> Tensor:
        """(T,) one unit's activations."""
        if not 0 <= unit < self.hidden_size:
            raise ConfigError(f"unit must be in 0..{self.hidden_size - 1}, not {unit}")
        return self.values(layer, quantity)[:, unit]


def token_spans(tokenizer: TextTokenizer, ids: list[int]) -> tuple[str, list[str], list[tuple[int, int]]]:
    """Decoded text, the piece each token shows as, and the character span each stands for.

    Tokens are decoded one by one and located in the whole decoded text. Word level puts a
    space (or a newline for <eos>) between tokens that a lone token does not decode to, so
    the gap before a token is counted as its own. A byte token that is part of a character
    decodes to U+FFFD alone; it is grouped with the following tokens until the group decodes
    to the text itself.
    """
    text = tokenizer.decode(ids)
    pieces: list[str] = []
    spans: list[tuple[int, int]] = []
    position = 0
    group_start = 0
    for k in range(len(ids)):
        decoded = tokenizer.decode(ids[group_start : k + 1])
        start = _locate(text, decoded, position)
        last = k + 1 == len(ids)
        if start < 0 and not last and k + 1 - group_start < _MAX_BYTE_GROUP:
            continue
        end = start + len(decoded) if start >= 0 else position
        if last:
            end = len(text)
        size = k + 1 - group_start
        spans.extend([(position, end)] * size)
        pieces.extend([""] * (size - 1) + [text[position:end]])
        position, group_start = end, k + 1
    return text, pieces, spans


def _locate(text: str, piece: str, position: int) -> int:
    """Where `piece` starts in `text` at `position`, after whitespace only; -1 if not there."""
    if text.startswith(piece, position):
        return position
    after_gap = position
    while after_gap < len(text) and text[after_gap].isspace():
        after_gap += 1
    return after_gap if after_gap > position and text.startswith(piece, after_gap) else -1


@torch.no_grad()
def inspect_text(
    model: LanguageModel | Classifier,
    tokenizer: TextTokenizer,
    text: str,
    *,
    max_tokens: int | None = None,
) -> Inspection:
    """Run `text` through the gate-by-gate cell of `model` and keep every intermediate."""
    all_ids = tokenizer.encode(text)
    ids = all_ids[:max_tokens] if max_tokens is not None else all_ids
    if not ids:
        raise ConfigError("nothing to inspect: the text is empty")
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        batch = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)
        traces, _ = model.core.trace(batch)
        # Batch of one: keep (T, H) per field, on the CPU where the renderers work.
        traces = [
            GateTrace(**{name: getattr(t, name)[0].float().cpu() for name in QUANTITIES.values()})
            for t in traces
        ]
        logits = None
        if isinstance(model, LanguageModel):
            logits = model.output_logits(traces[-1].hidden.to(device)).float().cpu()  # (T, V)
    finally:
        model.train(was_training)
    decoded, pieces, spans = token_spans(tokenizer, ids)
    return Inspection(
        text=decoded,
        ids=ids,
        pieces=pieces,
        spans=spans,
        traces=traces,
        logits=logits,
        total_tokens=len(all_ids),
    )


# ---- saturation


@dataclass(frozen=True)
class GateSaturation:
    """How often each unit's gate is saturated over the text: left (< 0.1), right (> 0.9)."""

    layer: int
    gate: str
    left: Tensor  # (H,) fraction of time steps below LEFT_SATURATED
    right: Tensor  # (H,) fraction of time steps above RIGHT_SATURATED

    def summary(self) -> dict[str, float | int | str]:
        """Means over units, and how many units are saturated more than half the time."""
        return {
            "layer": self.layer,
            "gate": self.gate,
            "mean_left": float(self.left.mean()),
            "mean_right": float(self.right.mean()),
            "units_mostly_left": int((self.left > 0.5).sum()),
            "units_mostly_right": int((self.right > 0.5).sum()),
            "units": int(self.left.numel()),
        }


def gate_saturation(inspection: Inspection) -> list[GateSaturation]:
    """One GateSaturation per layer and sigmoid gate (forget, input, output)."""
    result = []
    for layer in range(inspection.num_layers):
        for gate in SIGMOID_GATES:
            values = inspection.values(layer, gate)  # (T, H)
            result.append(
                GateSaturation(
                    layer=layer,
                    gate=gate,
                    left=(values < LEFT_SATURATED).float().mean(dim=0),
                    right=(values > RIGHT_SATURATED).float().mean(dim=0),
                )
            )
    return result


# ---- finding interpretable units


@dataclass(frozen=True)
class UnitMatch:
    layer: int
    unit: int
    quantity: str
    correlation: float  # Pearson r with the pattern's indicator; the sign says which way the unit moves


def pattern_indicator(inspection: Inspection, pattern: str) -> Tensor:
    """(T,) 1.0 where a token's text overlaps a match of `pattern`, else 0.0.

    The pattern is a Python regular expression searched in the decoded text (the input
    itself at char and BPE level) with re.MULTILINE, so ^ and $ match at line breaks; a search
    still running after lstmtext.core.pattern_search.SEARCH_SECONDS is refused.
    """
    inside = torch.zeros(len(inspection.text) + 1, dtype=torch.int32)
    # In a child with a time limit: a pathological pattern must not run until killed.
    for start, end in match_spans(pattern, inspection.text):
        inside[start] += 1
        inside[end] -= 1
    covered = torch.cumsum(inside, dim=0)[:-1] > 0  # (chars,) inside some match
    indicator = torch.zeros(len(inspection))
    for k, (start, end) in enumerate(inspection.spans):
        if end > start and bool(covered[start:end].any()):
            indicator[k] = 1.0
    return indicator


def correlations(activations: Tensor, target: Tensor) -> Tensor:
    """Pearson r of each column of activations (T, N) with target (T,); 0 for constant columns."""
    x = activations - activations.mean(dim=0)
    y = target - target.mean()
    denominator = x.norm(dim=0) * y.norm()
    r = (x * y[:, None]).sum(dim=0) / denominator
    return torch.where(denominator > 0, r, torch.zeros_like(r))


def find_units(
    inspection: Inspection,
    pattern: str,
    *,
    quantities: tuple[str, ...] = ("cell", "hidden"),
    top: int = 10,
) -> list[UnitMatch]:
    """Units of every layer ranked by |correlation| of activation with `pattern`'s indicator."""
    indicator = pattern_indicator(inspection, pattern)
    matched = int(indicator.sum())
    if matched == 0:
        raise ConfigError(f"the pattern {pattern!r} matches no token of the text")
    if matched == len(indicator):
        raise ConfigError(f"the pattern {pattern!r} matches every token of the text; nothing to contrast")
    keys: list[tuple[int, int, str]] = []
    columns: list[Tensor] = []
    for layer in range(inspection.num_layers):
        for quantity in quantities:
            columns.append(inspection.values(layer, quantity).double())
            keys.extend((layer, unit, quantity) for unit in range(inspection.hidden_size))
    r = correlations(torch.cat(columns, dim=1), indicator.double())  # (L * Q * H,)
    order = torch.argsort(r.abs(), descending=True, stable=True)[:top]
    matches = []
    for i in order.tolist():
        layer, unit, quantity = keys[i]
        matches.append(UnitMatch(layer, unit, quantity, float(r[i])))
    return matches


def most_active_unit(inspection: Inspection, layer: int, quantity: str) -> int:
    """The unit that varies most over the text: a reasonable default to look at."""
    return int(inspection.values(layer, quantity).var(dim=0).argmax())


# ---- predictions


@dataclass(frozen=True)
class TokenPrediction:
    """One of the next tokens a language model expects (classify.Prediction is a class verdict)."""

    token: str
    token_id: int
    probability: float


def position_index(inspection: Inspection, position: int) -> int:
    if not -len(inspection) <= position < len(inspection):
        raise ConfigError(
            f"position must be in 0..{len(inspection) - 1} (or negative from the end), not {position}"
        )
    return position % len(inspection)


def top_predictions(
    inspection: Inspection, tokenizer: TextTokenizer, position: int, top: int = 5
) -> list[TokenPrediction]:
    """The `top` most likely tokens to follow token `position` (softmax of the LM head)."""
    if inspection.logits is None:
        raise ConfigError("this model is a classifier: it makes no next-token predictions")
    probabilities = torch.softmax(inspection.logits[position_index(inspection, position)], dim=-1)
    values, indices = probabilities.topk(min(top, probabilities.numel()))
    return [
        TokenPrediction(
            token=tokenizer.decode([i]) or tokenizer.id_to_token(i), token_id=i, probability=float(p)
        )
        for p, i in zip(values.tolist(), indices.tolist(), strict=True)
    ]


# ---- colour


def value_range(quantity: str, values: Tensor) -> tuple[float, float]:
    """The range a colour scale spans: gates [0, 1], tanh outputs [-1, 1], the cell +-max|c|."""
    if quantity in SIGMOID_GATES:
        return 0.0, 1.0
    if quantity == "cell":
        bound = float(values.abs().max()) or 1.0
        return -bound, bound
    return -1.0, 1.0


def blue_white_red(value: float, low: float, high: float) -> tuple[int, int, int]:
    """RGB on a diverging scale: low is blue, the middle white, high red.

    The ends are light enough that black text stays readable on them.
    """
    middle = (low + high) / 2
    half = (high - low) / 2 or 1.0
    v = max(-1.0, min(1.0, (value - middle) / half))
    end = _RED if v >= 0 else _BLUE
    weight = abs(v)
    return tuple(round(255 + (channel - 255) * weight) for channel in end)  # type: ignore[return-value]


_RED = (239, 83, 80)
_BLUE = (66, 133, 244)
