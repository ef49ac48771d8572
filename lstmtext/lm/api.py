"""Language modelling from Python: text in, trained checkpoint or metrics out.

result = train_language_model(["input.txt"], TokenizerConfig("char"), model_options, TrainConfig())
metrics = evaluate_language_model("runs/lm", ["valid.txt"])
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from lstmtext.config import ModelShape, RunConfig, TokenizerConfig, TrainConfig
from lstmtext.core.model import LanguageModel
from lstmtext.data.bigcorpus import (
    BIG_CORPUS_BYTES,
    BIG_EVAL_BATCHES,
    big_corpus_file,
    default_cache_dir,
    memory_mapped_ids,
    read_sample,
)
from lstmtext.data.corpus import TokenStream, split_ids
from lstmtext.data.sources import read_text
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.device import kept_rng, select_device
from lstmtext.distributed import Distributed, process_group
from lstmtext.errors import CheckpointError, ConfigError, CorpusError
from lstmtext.events import TrainEvent, TrainResult
from lstmtext.lm import transfer
from lstmtext.lm.dynamic_eval import DEFAULT_BATCH_SIZE, DEFAULT_SEQ_LEN, DynamicEvaluation, dynamic_loss
from lstmtext.lm.ensemble import check_same_tokenizer
from lstmtext.lm.task import evaluate_stream, language_model_trainer
from lstmtext.runs import checkpoint as ckpt
from lstmtext.runs.resume_files import check_resume_shape, run_fingerprint
from lstmtext.runs.run_directory import claim_run_directory
from lstmtext.threads import torch_threads


def train_language_model(
    sources: Sequence[str],
    tokenizer_config: TokenizerConfig,
    shape: ModelShape,
    train_config: TrainConfig,
    out_dir: Path,
    *,
    val_sources: Sequence[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    shape_fields: Collection[str] | None = None,
    encoding: str = "utf-8",
    errors: str = "strict",
    on_event: Callable[[TrainEvent], None] | None = None,
    stop_event: threading.Event | None = None,
    distributed: Distributed | None = None,
    cache_dir: Path | None = None,
    big_corpus_bytes: int = BIG_CORPUS_BYTES,
    start_from: Path | str | None = None,
) -> TrainResult:
    """Read the corpus, build (or, on resume, reload) the tokenizer, and train.

    `distributed`: this process's rank under torchrun (`lstmtext.distributed.from_environment()`);
    the process group is joined here, and every rank must call this with the same arguments.
    A single UTF-8 file of `big_corpus_bytes` or more (any size with `cache_dir`) is memory-mapped
    from an id cache instead of read whole (see lstmtext.data.bigcorpus).

    A folder that holds files is refused unless `resume` continues its run or `overwrite`
    clears it first. On resume the checkpoint's model and tokenizer are kept; `shape` and
    `tokenizer_config` must agree with them in `shape_fields` (names of ModelShape and
    TokenizerConfig fields the caller set; None: all of them), and the corpus and tokenizer
    must be those the run trained on.

    `start_from`: a language model to fine-tune instead of random weights (lstmtext.lm.transfer):
    its tokenizer and shape are kept, and `shape_fields` that would change them are refused.
    """
    out_dir = Path(out_dir)
    distributed = distributed or Distributed()
    if tokenizer_config.level == "char" and shape.softmax_cutoff:
        raise ConfigError(
            "a two-level softmax (softmax cutoff) needs a word or BPE vocabulary; "
            "a char-level one is too small to gain from it"
        )
    device = distributed.device_for(select_device(train_config.device))
    # Only rank 0 writes into out_dir, so only it holds the lock.
    claim = (
        claim_run_directory(out_dir, resume=resume, overwrite=overwrite)
        if distributed.is_main
        else contextlib.nullcontext()
    )
    # torch's thread count is given back afterwards: a library call leaves global state as it was.
    model = None  # a new one, unless the run starts from a trained model
    with (
        torch_threads(train_config.threads),
        kept_rng(device),
        process_group(distributed, device),
        claim as run_directory,
    ):
        big = big_corpus_file(
            sources, encoding=encoding, errors=errors, cache_dir=cache_dir, threshold=big_corpus_bytes
        )
        # A big file is never read whole: the tokenizer learns from its head, the ids are memory-mapped.
        text = read_text(sources, encoding=encoding, errors=errors) if big is None else read_sample(big)
        if big is not None and not val_sources and train_config.eval_batches is None:
            train_config = replace(train_config, eval_batches=BIG_EVAL_BATCHES)
        val_text = read_text(val_sources, encoding=encoding, errors=errors) if val_sources else None
        if resume:
            last = ckpt.resume_directory(out_dir / "checkpoints" / "last")
            if not last.exists():
                raise CheckpointError(f"nothing to resume: {last} does not exist")
            previous = ckpt.read_config(last)
            check_resume_shape(previous, shape, tokenizer_config, shape_fields)
            tokenizer = TextTokenizer.load(last / ckpt.TOKENIZER)
            kept = replace(
                train_config, start_from=previous.train.start_from, added_tokens=previous.train.added_tokens
            )
            run_config = replace(previous, train=kept)
        elif start_from is not None:
            if big is not None:
                raise ConfigError(
                    "--from fine-tunes on a corpus read whole: under 256 MiB, without --cache-dir"
                )
            point = transfer.start_from(
                Path(start_from), text, shape, tokenizer_config, train_config, shape_fields
            )
            tokenizer, run_config, model = point.tokenizer, point.run_config, point.model
            if on_event is not None and distributed.is_main:
                on_event(TrainEvent("note", 0, 0, message=transfer.describe(point, start_from)))
        else:
            # Trained once, on rank 0, so that every rank has exactly the same vocabulary.
            trained = TextTokenizer.train([text], tokenizer_config).to_str() if distributed.is_main else None
            tokenizer = TextTokenizer.from_str(distributed.broadcast_text(trained))
            run_config = RunConfig(
                tokenizer=tokenizer_config, model=shape.model_config(tokenizer.vocab_size), train=train_config
            )
        if big is None:
            ids = tokenizer.encode_array(text)
        else:
            cache = cache_dir or default_cache_dir(big, out_dir)
            ids = memory_mapped_ids(big, tokenizer, cache, distributed=distributed, on_event=on_event)
        if val_text is not None:
            train_ids, val_ids = ids, tokenizer.encode_array(val_text)
        elif train_config.val_fraction > 0:
            train_ids, val_ids = split_ids(ids, train_config.val_fraction)
        else:
            train_ids, val_ids = ids, None
        if len(train_ids) < 2:
            raise CorpusError("the corpus holds fewer than 2 tokens: nothing to learn")
        if run_directory is not None:
            run_directory.begin()
        trainer = language_model_trainer(
            run_config,
            tokenizer,
            train_ids,
            val_ids,
            out_dir,
            on_event=on_event,
            stop_event=stop_event,
            distributed=distributed,
            fingerprint=run_fingerprint(tokenizer, train_ids, val_ids),
            model=model,
        )
        return trainer.fit(resume=resume)


@dataclass(frozen=True)
class LanguageModelMetrics:
    loss: float  # nats per token
    perplexity: float
    bits_per_token: float
    bits_per_byte: float  # comparable across char, word and BPE models
    tokens: int
    bytes: int


def evaluate_language_model(
    model_dir: Path | str | Sequence[Path | str],
    sources: Sequence[str],
    *,
    batch_size: int | None = None,
    seq_len: int | None = None,
    device: str = "auto",
    encoding: str = "utf-8",
    errors: str = "strict",
    dynamic: DynamicEvaluation | None = None,
) -> LanguageModelMetrics:
    """Loss of a trained language model on held-out text, with state carried through each row
    (`batch_size` rows, 16 by default, read `seq_len` tokens at a time, 256 by default).

    With `dynamic`, the model adapts to the text as it reads it (lstmtext.lm.dynamic_eval); the
    defaults are then one row and segments of 20 tokens. Several directories: the loss of
    their ensemble, the mean of their probabilities (lstmtext.lm.ensemble).
    """
    model_dirs = [model_dir] if isinstance(model_dir, (str, Path)) else list(model_dir)
    if not model_dirs:
        raise ConfigError("no model to evaluate")
    if dynamic is not None and len(model_dirs) > 1:
        raise ConfigError("dynamic evaluation adapts one model; give --model once")
    if batch_size is None:
        batch_size = DEFAULT_BATCH_SIZE if dynamic else 16
    if seq_len is None:
        seq_len = DEFAULT_SEQ_LEN if dynamic else 256
    torch_device = select_device(device)
    checkpoints = [ckpt.load_checkpoint(d, task="lm", device=str(torch_device)) for d in model_dirs]
    check_same_tokenizer(checkpoints, model_dirs)
    text = read_text(sources, encoding=encoding, errors=errors)
    ids = checkpoints[0].tokenizer.encode_array(text)
    if len(ids) < 2:
        raise CorpusError("the evaluation text holds fewer than 2 tokens")
    batch_size = max(1, min(batch_size, (len(ids) - 1) // 2))
    stream = TokenStream(ids, batch_size, seq_len)
    models = [c.model for c in checkpoints]
    assert all(isinstance(m, LanguageModel) for m in models)
    if dynamic is None:
        loss, predicted = evaluate_stream(models, stream, torch_device)  # type: ignore[arg-type]
    else:
        loss, predicted = dynamic_loss(models[0], stream, torch_device, dynamic)  # type: ignore[arg-type]
    num_bytes = len(text.encode("utf-8"))
    # Each predicted token covers, on average, num_bytes / len(ids) bytes of the text.
    bits_per_token = loss / math.log(2)
    return LanguageModelMetrics(
        loss=loss,
        perplexity=math.exp(min(loss, 700.0)),
        bits_per_token=bits_per_token,
        bits_per_byte=bits_per_token * len(ids) / num_bytes,
        tokens=predicted,
        bytes=num_bytes,
    )
