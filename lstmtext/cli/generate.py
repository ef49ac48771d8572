"""`lstmtext generate`: stream text from a language model (the embedded one by default)."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import replace
from typing import Annotated, NoReturn

import torch
import typer

from lstmtext.cli.options import MAX_THREADS, LanguageModelOption
from lstmtext.config import StepPrecision
from lstmtext.core.model import LanguageModel
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.device import select_device
from lstmtext.errors import ConfigError
from lstmtext.lm.generate import GenerateConfig, Session, batch_rows, sample_in_batches
from lstmtext.lm.sample import make_generator
from lstmtext.pretrained import default_lm_dir
from lstmtext.runs.checkpoint import load_checkpoint

SAMPLING = "Sampling"
OUTPUT = "Output"
# Interactive commands; any other line is a prompt.
TOP_COMMAND = re.compile(r":top(?:\s+([1-9][0-9]*))?")
PICK_COMMAND = re.compile(r":pick\s+([1-9][0-9]*)")
DEFAULT_TOP = 10


def _write(text: str) -> None:
    # Flushed per piece: a reader sees each token as it is sampled.
    sys.stdout.write(text)
    sys.stdout.flush()


def _reader_gone() -> NoReturn:
    """The reader left (`| head -c 100`): end quietly, with exit code 0.

    Click's own EPIPE handling would exit 1. Pointing stdout at /dev/null keeps Python's
    flush at exit from raising BrokenPipeError again.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    raise typer.Exit(0)


def _warn_unknown(tokenizer: TextTokenizer, text: str) -> None:
    unknown = tokenizer.unknown_characters(text)
    if not unknown:
        return
    shown = " ".join(repr(u) for u in sorted(unknown)[:8]) + (" ..." if len(unknown) > 8 else "")
    how = "read as <unk>" if tokenizer.level == "word" else "fed as UTF-8 bytes"
    kind = "words" if tokenizer.level == "word" else "characters"
    sys.stderr.write(f"lstmtext: warning: the model has not seen these {kind}, {how}: {shown}\n")


def _one_sample(session: Session, seed: str, as_json: bool) -> None:
    if as_json:
        text = "".join(piece for _, piece in session.sample())
        _write(json.dumps({"sample": 0, "seed": seed, "text": text}, ensure_ascii=False) + "\n")
        return
    _write(seed)
    last = seed
    for _, piece in session.sample():
        _write(piece)
        last = piece
    if not last.endswith("\n"):
        _write("\n")


def _many_samples(batches: Iterator[list[str]], seed: str, as_json: bool) -> None:
    # The rows of a batch finish together: each batch is printed, sample by sample, when done.
    row = 0
    for texts in batches:
        for text in texts:
            if as_json:
                _write(json.dumps({"sample": row, "seed": seed, "text": text}, ensure_ascii=False) + "\n")
            else:
                body = seed + text
                _write(f"--- sample {row} ---\n{body}" + ("" if body.endswith("\n") else "\n"))
            row += 1


def _beam(session: Session, seed: str, as_json: bool) -> None:
    text = session.beam_search()
    if as_json:
        _write(json.dumps({"sample": 0, "seed": seed, "text": text}, ensure_ascii=False) + "\n")
    else:
        _write(seed + text + ("" if (seed + text).endswith("\n") else "\n"))


def _show_top(session: Session, k: int) -> None:
    for rank, (_, probability, text) in enumerate(session.top_tokens(k), start=1):
        _write(f"{rank:>3} {probability:7.2%}  {text!r}\n")


def _continue(session: Session) -> None:
    if session.config.beam > 1:
        _write(session.beam_search())
    else:
        for _, piece in session.sample():
            _write(piece)
    _write("\n")


def _interactive(session: Session, tokenizer: TextTokenizer, seed: str) -> None:
    """One prompt per line of stdin (the seed, if any, first); each continuation goes on from the last.

    An empty line asks for more of the same text. `:top [K]` lists the K most likely next
    tokens; `:pick N` appends the N-th of them and lists the next ones, so that a text can
    be chosen token by token. Any other line is text.
    """
    shown = DEFAULT_TOP
    if seed:
        _warn_unknown(tokenizer, seed)
        session.feed(seed)
        _write(seed)
        _continue(session)
    prompt = sys.stdin.isatty()
    while True:
        if prompt:
            sys.stderr.write("> ")
            sys.stderr.flush()
        line = sys.stdin.readline()
        if not line:
            break
        text = line.rstrip("\r\n")
        top, pick = TOP_COMMAND.fullmatch(text.strip()), PICK_COMMAND.fullmatch(text.strip())
        if top:
            shown = int(top.group(1) or DEFAULT_TOP)
            _show_top(session, shown)
        elif pick:
            rank = int(pick.group(1))
            candidates = session.top_tokens(max(rank, shown))
            if rank > len(candidates):
                sys.stderr.write(f"lstmtext: warning: there is no candidate {rank}\n")
                continue
            _write(session.choose(candidates[rank - 1][0]) + "\n")
            _show_top(session, shown)
        else:
            _warn_unknown(tokenizer, text)
            session.feed(text)
            _continue(session)


def generate(
    model: LanguageModelOption = None,
    seed: Annotated[
        str,
        typer.Option(
            "--seed", "-s", help="Prime text, fed through the model once; empty: start after a line break."
        ),
    ] = "",
    length: Annotated[int, typer.Option("--length", "-n", help="Tokens to sample.", min=0)] = 500,
    temperature: Annotated[
        float, typer.Option(help="Below 1: safer, above 1: wilder; 0 is greedy.", rich_help_panel=SAMPLING)
    ] = 1.0,
    top_k: Annotated[
        int | None, typer.Option(help="Sample among the K most likely tokens only.", rich_help_panel=SAMPLING)
    ] = None,
    top_p: Annotated[
        float | None,
        typer.Option(
            help="Sample among the most likely tokens holding mass P (nucleus).", rich_help_panel=SAMPLING
        ),
    ] = None,
    greedy: Annotated[
        bool, typer.Option(help="Always take the most likely token.", rich_help_panel=SAMPLING)
    ] = False,
    beam: Annotated[
        int,
        typer.Option(
            help="Beam search of this width (most likely continuation; word/BPE models).",
            rich_help_panel=SAMPLING,
        ),
    ] = 1,
    num_samples: Annotated[
        int, typer.Option(help="Samples made together in one batch.", rich_help_panel=SAMPLING)
    ] = 1,
    random_state: Annotated[
        int | None,
        typer.Option(
            help="Seed of the sampler: the same state gives the same text.", rich_help_panel=SAMPLING
        ),
    ] = None,
    stop: Annotated[
        str | None, typer.Option(help="End where this text appears (not printed).", rich_help_panel=SAMPLING)
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per sample on stdout.", rich_help_panel=OUTPUT)
    ] = False,
    interactive: Annotated[
        bool,
        typer.Option(
            help="Read prompts from stdin, one a line, the state carried on; an empty line continues, "
            "':top K' lists the K likeliest next tokens, ':pick N' appends the N-th.",
            rich_help_panel=OUTPUT,
        ),
    ] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "cpu",
    precision: Annotated[
        StepPrecision, typer.Option(help="Matrices of the inference step (bf16: faster on CPUs with bf16).")
    ] = StepPrecision.fp32,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=MAX_THREADS,
            help="CPU threads (default: 1 for one sample, as fast as more; else one per core).",
        ),
    ] = None,
) -> None:
    """Sample text from a language model, printing each token as it is made.

    Example: [bold]lstmtext generate --seed "The old house" --length 300 --temperature 0.8[/]

    Shakespeare: [bold]lstmtext generate --model shakespeare --seed "ROMEO:"[/]
    """
    config = GenerateConfig(
        length=length,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        greedy=greedy,
        num_samples=num_samples,
        stop=stop,
        beam=beam,
        precision=precision.value,
    )
    if interactive and (num_samples > 1 or as_json):
        raise ConfigError("--interactive makes one text at a time: leave out --num-samples and --json")
    torch_device = select_device(device)
    checkpoint = load_checkpoint(model or default_lm_dir(), task="lm", device=str(torch_device))
    assert isinstance(checkpoint.model, LanguageModel)
    tokenizer = checkpoint.tokenizer
    generator = make_generator(random_state, torch_device)
    # Many samples are made in bounded batches (sample_in_batches); this session holds one batch.
    rows = batch_rows(checkpoint.model.config, config.num_samples)
    session = Session(checkpoint.model, tokenizer, replace(config, num_samples=rows), generator)
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    elif torch_device.type == "cpu" and session.rows == 1:
        # One row is a chain of small matrix-vector products: a second thread only adds hand-offs.
        torch.set_num_threads(1)
    try:
        if interactive:
            _interactive(session, tokenizer, seed)
            return
        _warn_unknown(tokenizer, seed)
        if config.num_samples > 1:
            batches = sample_in_batches(
                checkpoint.model, tokenizer, seed, config, generator, step=session.step
            )
            _many_samples(batches, seed, as_json)
            return
        session.feed(seed)
        if config.beam > 1:
            _beam(session, seed, as_json)
        else:
            _one_sample(session, seed, as_json)
    except BrokenPipeError:
        _reader_gone()
    finally:
        torch.set_num_threads(previous_threads)  # the CLI also runs in-process (tests, notebooks)
