"""Fine-tuning a trained language model on new text (`lstmtext train CORPUS --from MODEL`).

The run keeps MODEL's tokenizer and shape; only regularisation (dropout) may change. A char or
word vocabulary meeting tokens it lacks grows: each new row of the embedding and of the output
layer starts at the mean of the old rows, and its output bias at the mean bias (ULMFiT's rule),
so a new token starts as "an average token" instead of noise. Byte-level BPE never lacks one.
A word model with a two-level softmax cannot grow (its clusters are fixed): its unknown words
stay <unk>, and the event says how many.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import torch

from lstmtext.config import ModelConfig, ModelShape, RunConfig, TokenizerConfig, TrainConfig
from lstmtext.core.model import LanguageModel
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.errors import ConfigError
from lstmtext.runs import checkpoint as ckpt

# What fine-tuning may change: regularisation. Everything else of ModelShape is the model's.
REGULARISATION = ("dropout", "embedding_dropout", "locked_dropout", "weight_drop")


@dataclass
class StartingPoint:
    run_config: RunConfig
    tokenizer: TextTokenizer
    model: LanguageModel
    added_tokens: int  # the vocabulary grew by this many
    unknown_tokens: int  # distinct tokens of the corpus left unknown (a two-level word model)


def start_from(
    source: Path,
    text: str,
    shape: ModelShape,
    tokenizer_config: TokenizerConfig,
    train_config: TrainConfig,
    fields: Collection[str] | None,
) -> StartingPoint:
    """MODEL's tokenizer (grown to `text` where it can) and weights, with the regularisation of
    `shape`; `fields` are the ModelShape and TokenizerConfig fields the caller set (None: all),
    and any of them that would change MODEL is refused."""
    previous = ckpt.read_config(source)
    if previous.model.task != "lm":
        raise ConfigError(
            f"--from {source} is a {previous.model.task} model: a language model starts from a language "
            "model (a classifier starts from one with train-classifier --from)"
        )
    check_kept(source, previous, shape, tokenizer_config, fields)
    tokenizer = TextTokenizer.load(source / ckpt.TOKENIZER)
    ckpt.check_weight_shapes(previous.model, source / ckpt.WEIGHTS)
    model = LanguageModel(previous.model)
    ckpt.load_weights(model, source / ckpt.WEIGHTS)

    new_tokens = missing_tokens(tokenizer, text, previous.tokenizer.min_frequency)
    unknown = 0
    if new_tokens and previous.model.softmax_cutoff:
        unknown, new_tokens = len(new_tokens), []
    if new_tokens:
        tokenizer = tokenizer.with_tokens(new_tokens)
    regularisation = {
        name: getattr(shape, name) for name in REGULARISATION if fields is None or name in fields
    }
    model_config = dataclasses.replace(previous.model, vocab_size=tokenizer.vocab_size, **regularisation)
    model = rebuilt(model, model_config)
    train_config = dataclasses.replace(train_config, start_from=str(source), added_tokens=len(new_tokens))
    run_config = RunConfig(tokenizer=previous.tokenizer, model=model_config, train=train_config)
    return StartingPoint(run_config, tokenizer, model, len(new_tokens), unknown)


def describe(point: StartingPoint, source: Path | str) -> str:
    """The line the run's log gives about its start."""
    grew = (
        f"its vocabulary grew by {point.added_tokens} tokens (new rows at the mean embedding and output bias)"
        if point.added_tokens
        else "its vocabulary covers the corpus"
    )
    if point.unknown_tokens:
        grew = f"{point.unknown_tokens} tokens of the corpus stay <unk> (a two-level softmax cannot grow)"
    return f"starting from {source}: {grew}"


def check_kept(
    source: Path,
    previous: RunConfig,
    shape: ModelShape,
    tokenizer_config: TokenizerConfig,
    fields: Collection[str] | None,
) -> None:
    """An option that would change MODEL's tokenizer or shape is refused, not ignored."""
    asked = {f.name: getattr(shape, f.name) for f in dataclasses.fields(ModelShape)}
    asked |= {f.name: getattr(tokenizer_config, f.name) for f in dataclasses.fields(TokenizerConfig)}
    kept = dataclasses.asdict(previous.model) | dataclasses.asdict(previous.tokenizer)
    names = set(asked) if fields is None else set(fields) & set(asked)
    for name in sorted(names - set(REGULARISATION)):
        if asked[name] != kept[name]:
            raise ConfigError(
                f"cannot change {name} to {asked[name]!r} when starting from {source}: it keeps its "
                f"{kept[name]!r}; leave the option out, or train from scratch"
            )


def missing_tokens(tokenizer: TextTokenizer, text: str, min_frequency: int = 1) -> list[str]:
    """Characters (char level) or words (word level) of `text` the vocabulary lacks, the word
    ones seen at least `min_frequency` times, most frequent first; BPE lacks none."""
    if tokenizer.level == "char":
        return sorted(tokenizer.unknown_characters(text))
    if tokenizer.level != "word":
        return []
    vocabulary = tokenizer.vocabulary()
    counts = collections.Counter(word for word in tokenizer.words(text) if word not in vocabulary)
    return sorted((w for w, n in counts.items() if n >= min_frequency), key=lambda w: (-counts[w], w))


@torch.no_grad()
def rebuilt(model: LanguageModel, config: ModelConfig) -> LanguageModel:
    """A model of `config` (other regularisation, a bigger vocabulary) holding `model`'s weights:
    the old rows unchanged, each row past the old vocabulary at the mean of the old rows."""
    if config == model.config:
        return model
    old = model.config.vocab_size
    bigger = LanguageModel(config)
    state = model.state_dict()
    for name, tensor in bigger.state_dict().items():
        source = state[name]
        if tensor.shape == source.shape:
            tensor.copy_(source)
            continue
        # The embedding, the output weight and its bias are the vocabulary-sized tensors.
        tensor[:old].copy_(source)
        tensor[old:].copy_(source.mean(dim=0, keepdim=True).expand_as(tensor[old:]))
    return bigger
