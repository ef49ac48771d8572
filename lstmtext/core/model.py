"""One LSTM core (embedding, stacked LSTM, dropout) and the small heads that sit on it.

Shapes: ids (B, T); embeddings (B, T, E); outputs (B, T, H); state = (h, c), each (L, B, H).
"""

from __future__ import annotations

import torch
from torch import _VF, Tensor, nn

from lstmtext.config import ModelConfig
from lstmtext.core.cell import GateTrace, layer_weights, run_layer, run_lstm
from lstmtext.core.regularisation import ActivationPenalty, drop_weights, element_dropout, locked_dropout
from lstmtext.core.softmax import TwoLevelSoftmax

State = tuple[Tensor, Tensor]


class Dropout(nn.Module):
    """nn.Dropout's function (zero each element with probability p, scale the rest by
    1/(1-p)), with the mask from regularisation.random_keep on CPU, where PyTorch's
    bernoulli-based dropout is slow (BENCHMARKS.md, "The training step on CPU").
    Elsewhere (CUDA's fused kernel) it is F.dropout."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return element_dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LSTMCore(nn.Module):
    """Embedding -> dropout -> N stacked LSTM layers -> dropout.

    `implementation="fused"` runs torch.nn.LSTM (cuDNN / oneDNN, the fast one);
    `implementation="cell"` runs the gate-by-gate cell of lstmtext.core.cell on the very same
    parameters. Both compute the same function.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim)
        self.embedding_dropout = Dropout(config.embedding_dropout)
        self.lstm = nn.LSTM(
            config.embedding_dim,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.output_dropout = Dropout(config.dropout)
        self.implementation = "fused"

    def initial_state(self, batch_size: int, device: torch.device | None = None) -> State:
        shape = (self.config.num_layers, batch_size, self.config.hidden_size)
        device = device or self.embedding.weight.device
        return torch.zeros(shape, device=device), torch.zeros(shape, device=device)

    def forward(self, ids: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        outputs, _, state = self.run(ids, state)
        return outputs, state

    def run(self, ids: Tensor, state: State | None = None) -> tuple[Tensor, Tensor, State]:
        """(top outputs after dropout, the same before it, state): AR/TAR need both."""
        if state is None:
            state = self.initial_state(ids.shape[0], ids.device)
        if self.training and self._layer_by_layer(ids.device):
            return self.forward_regularised(self.embedding(ids), state)
        embedded = self.embedding_dropout(self.embedding(ids))  # (B, T, E)
        if self.implementation == "fused":
            outputs, state = self.lstm(embedded, state)
        else:
            outputs, state, _ = run_lstm(
                self.lstm, embedded, state, dropout=self.lstm.dropout, training=self.training
            )
        return self.output_dropout(outputs), outputs, state

    def _layer_by_layer(self, device: torch.device) -> bool:
        """Whether training runs the layers one call each (forward_regularised).

        Locked dropout and weight drop need it. So does dropout between layers on CPU, for
        speed: nn.LSTM draws that mask with bernoulli_, a sizeable part of a CPU training step;
        random_keep's mask costs a fraction of it (BENCHMARKS.md, "The training step on CPU").
        On CUDA one cuDNN call with its own dropout stays the fast path.
        """
        config = self.config
        if config.locked_dropout or config.weight_drop > 0:
            return True
        return device.type == "cpu" and config.num_layers > 1 and config.dropout > 0

    def forward_regularised(self, embedded: Tensor, state: State) -> tuple[Tensor, Tensor, State]:
        """Training layer by layer: locked dropout, weight drop (lstmtext.core.regularisation), or
        plain dropout between layers on CPU.

        Layer by layer, so that a locked mask can sit between layers and each layer can run
        on its own dropped U; each layer is still one fused call (or the gate-by-gate cell,
        which draws nothing from the random generator, so both see the same masks).
        """
        config = self.config
        dropout = locked_dropout if config.locked_dropout else element_dropout
        layer_input = dropout(embedded, config.embedding_dropout, True)
        hidden_all, cell_all = state
        final_hidden, final_cell = [], []
        for layer in range(config.num_layers):
            weight_ih, weight_hh, bias_ih, bias_hh = layer_weights(self.lstm, layer)
            weights = (weight_ih, drop_weights(weight_hh, config.weight_drop, True), bias_ih, bias_hh)
            start = hidden_all[layer], cell_all[layer]
            if self.implementation == "fused":
                outputs, (hidden, cell) = fused_layer(layer_input, *start, weights)
            else:
                outputs, (hidden, cell), _ = run_layer(layer_input, *start, weights)
            final_hidden.append(hidden)
            final_cell.append(cell)
            layer_input = dropout(outputs, config.dropout, True)  # between layers, and on the top output
        return layer_input, outputs, (torch.stack(final_hidden), torch.stack(final_cell))

    @torch.no_grad()
    def trace(self, ids: Tensor, state: State | None = None) -> tuple[list[GateTrace], State]:
        """Every gate of every layer for `ids`, from the gate-by-gate cell (eval mode)."""
        if state is None:
            state = self.initial_state(ids.shape[0], ids.device)
        embedded = self.embedding(ids)
        _, state, traces = run_lstm(self.lstm, embedded, state, trace=True)
        return traces, state


def fused_layer(
    inputs: Tensor, hidden: Tensor, cell: Tensor, weights: tuple[Tensor, Tensor, Tensor, Tensor]
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """One LSTM layer through the kernel nn.LSTM calls, on weights given per call.

    inputs (B, T, I), hidden and cell (B, H). nn.LSTM itself cannot take a dropped U for
    one call without swapping its parameters; its kernel can.
    """
    outputs, final_hidden, final_cell = _VF.lstm(
        inputs, (hidden.unsqueeze(0), cell.unsqueeze(0)), list(weights), True, 1, 0.0, True, False, True
    )
    return outputs, (final_hidden[0], final_cell[0])


class LanguageModel(nn.Module):
    """Core + a linear head over the vocabulary; the head may share the embedding matrix.

    With `softmax_cutoff` > 0 the head's logits feed a two-level softmax (lstmtext.core.softmax),
    and what forward() and output_logits() return are its log-probabilities: a softmax of
    them is the model's distribution, as it is of plain logits.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.core = LSTMCore(config)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)
        if config.tie_weights:
            self.head.weight = self.core.embedding.weight
        self.two_level = (
            TwoLevelSoftmax(config.hidden_size, config.vocab_size, config.softmax_cutoff)
            if config.softmax_cutoff
            else None
        )

    def forward(
        self,
        ids: Tensor,
        state: State | None = None,
        targets: Tensor | None = None,
        penalty: ActivationPenalty | None = None,
    ) -> tuple[Tensor, State] | tuple[Tensor, State, Tensor]:
        """logits (B, T, V) and state; with `targets` (B, T), the fp32 -log P of each target
        (B, T) instead of logits; with `penalty` as well, (nll, state, AR/TAR penalty scalar).

        Training and evaluation pass targets: the two-level softmax then skips most of the
        vocabulary. Every call goes through forward(), the penalised one too, so that
        DistributedDataParallel prepares its gradient reduction for each step.
        """
        outputs, raw, state = self.core.run(ids, state)
        if targets is None:
            return self.output_logits(outputs), state
        nll = self.negative_log_likelihood(outputs, targets)
        if penalty is None:
            return nll, state
        return nll, state, penalty(raw, outputs)

    def output_logits(self, outputs: Tensor) -> Tensor:
        """Core outputs (..., H) -> logits (..., V) (log-probabilities under the two-level softmax)."""
        logits = self.head(outputs)
        return logits if self.two_level is None else self.two_level.log_probs(logits, outputs)

    def negative_log_likelihood(self, outputs: Tensor, targets: Tensor) -> Tensor:
        flat_outputs = outputs.reshape(-1, outputs.shape[-1])
        if self.two_level is not None:
            nll = self.two_level.negative_log_likelihood(self.head, flat_outputs, targets.reshape(-1))
        else:
            nll = nn.functional.cross_entropy(
                self.head(flat_outputs).float(), targets.reshape(-1), reduction="none"
            )
        return nll.reshape(targets.shape)

    @torch.no_grad()
    def set_output_prior(self, token_counts: Tensor) -> None:
        """Start the head's bias at the log-frequency of each token in the training data.

        A fresh model otherwise spends its first hundreds of steps learning the unigram
        distribution, and far more pushing down tokens the corpus never holds (a char
        vocabulary carries 256 byte-fallback tokens): Adam moves each bias by about one
        learning rate per step. Measured on Tiny Shakespeare, 1x128 char LSTM, 200 steps:
        loss 2.39 without this, 1.98 with it.
        """
        counts = token_counts.to(self.head.bias.dtype)
        smoothed = counts + 0.1  # unseen tokens: unlikely, not impossible
        self.head.bias.copy_(torch.log(smoothed / smoothed.sum()))
        if self.two_level is not None:
            self.two_level.set_frequencies(token_counts)


class Classifier(nn.Module):
    """Core + concat pooling (last hidden, max and mean over real tokens) + dropout + linear.

    Pooling follows ULMFiT: padding positions never enter the max or the mean, and the
    "last" hidden state is the one at each row's last real token.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.core = LSTMCore(config)
        self.head_dropout = Dropout(config.dropout)
        self.head = nn.Linear(3 * config.hidden_size, config.num_classes)

    def pool(self, outputs: Tensor, lengths: Tensor) -> Tensor:
        """outputs (B, T, H), lengths (B,) -> (B, 3H)."""
        positions = torch.arange(outputs.shape[1], device=outputs.device)
        mask = (positions[None, :] < lengths[:, None]).unsqueeze(-1)  # (B, T, 1)
        last = outputs[torch.arange(outputs.shape[0], device=outputs.device), lengths - 1]
        maximum = outputs.masked_fill(~mask, float("-inf")).amax(dim=1)
        mean = (outputs * mask).sum(dim=1) / lengths[:, None].to(outputs.dtype)
        return torch.cat([last, maximum, mean], dim=-1)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """ids (B, T) right-padded, lengths (B,) >= 1 -> logits (B, classes)."""
        outputs, _ = self.core(ids)
        return self.head(self.head_dropout(self.pool(outputs, lengths)))

    def forward_windows(self, ids: Tensor, window: int) -> Tensor:
        """ids (1, T) of one long text -> logits (1, classes), as forward gives them (within
        float rounding), read `window` tokens at a time with the LSTM state carried.

        Memory then grows with the window, not the text: a whole 20 MB review would need
        (1, T, H) outputs of gigabytes, and oneDNN refuses sequences that long at all. The
        pooling is kept as running values: last output, running max, running sum (in fp32).
        """
        state = None
        last = maximum = total = None
        for start in range(0, ids.shape[1], window):
            outputs, state = self.core(ids[:, start : start + window], state)  # (1, w, H)
            top = outputs.amax(dim=1)
            maximum = top if maximum is None else torch.maximum(maximum, top)
            part = outputs.float().sum(dim=1)
            total = part if total is None else total + part
            last = outputs[:, -1]
        assert last is not None and maximum is not None and total is not None, "an empty text"
        mean = (total / ids.shape[1]).to(last.dtype)
        return self.head(self.head_dropout(torch.cat([last, maximum, mean], dim=-1)))


def build_model(config: ModelConfig) -> LanguageModel | Classifier:
    return Classifier(config) if config.task == "classify" else LanguageModel(config)


def count_parameters(model: nn.Module) -> int:
    # Tied weights are one tensor seen twice; count it once.
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
