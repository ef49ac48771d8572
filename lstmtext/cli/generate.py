"""`lstmtext generate`: stream text from a language model (the embedded one by default)."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import torch
import typer

from lstmtext.checkpoint import load_checkpoint
from lstmtext.generate import GenerateConfig, Session
from lstmtext.model import LanguageModel
from lstmtext.pretrained import default_lm_dir
from lstmtext.sample import make_generator
from lstmtext.tokenizer import TextTokenizer
from lstmtext.train import select_device

SAMPLING = "Sampling"
OUTPUT = "Output"


class StepPrecision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"


def _write(text: str) -> None:
    # Flushed per piece: a reader sees each token as it is sampled.
    sys.stdout.write(text)
    sys.stdout.flush()


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


def _many_samples(session: Session, seed: str, as_json: bool) -> None:
    # Rows are sampled in one batch, so they finish together: each is printed whole.
    texts = [""] * session.rows
    for row, piece in session.sample():
        texts[row] += piece
    for row, text in enumerate(texts):
        if as_json:
            _write(json.dumps({"sample": row, "seed": seed, "text": text}, ensure_ascii=False) + "\n")
        else:
            body = seed + text
            _write(f"--- sample {row} ---\n{body}" + ("" if body.endswith("\n") else "\n"))


def _beam(session: Session, seed: str, as_json: bool) -> None:
    text = session.beam_search()
    if as_json:
        _write(json.dumps({"sample": 0, "seed": seed, "text": text}, ensure_ascii=False) + "\n")
    else:
        _write(seed + text + ("" if (seed + text).endswith("\n") else "\n"))


def _interactive(session: Session, tokenizer: TextTokenizer) -> None:
    """One prompt per line of stdin; each continuation goes on from the last. An empty line
    asks for more of the same text."""
    prompt = sys.stdin.isatty()
    while True:
        if prompt:
            sys.stderr.write("> ")
            sys.stderr.flush()
        line = sys.stdin.readline()
        if not line:
            break
        text = line.rstrip("\r\n")
        _warn_unknown(tokenizer, text)
        session.feed(text)
        for _, piece in session.sample():
            _write(piece)
        _write("\n")


def generate(
    model: Annotated[
        Path | None,
        typer.Option("--model", "-m", help="Checkpoint directory (default: the embedded Shakespeare model)."),
    ] = None,
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
        typer.Option(help="Sample among the most likely tokens holding mass P (nucleus).", rich_help_panel=SAMPLING),
    ] = None,
    greedy: Annotated[bool, typer.Option(help="Always take the most likely token.", rich_help_panel=SAMPLING)] = False,
    beam: Annotated[
        int,
        typer.Option(help="Beam search of this width (most likely continuation; word/BPE models).", rich_help_panel=SAMPLING),
    ] = 1,
    num_samples: Annotated[
        int, typer.Option(help="Samples made together in one batch.", rich_help_panel=SAMPLING)
    ] = 1,
    random_state: Annotated[
        int | None,
        typer.Option(help="Seed of the sampler: the same state gives the same text.", rich_help_panel=SAMPLING),
    ] = None,
    stop: Annotated[
        str | None, typer.Option(help="End where this text appears (not printed).", rich_help_panel=SAMPLING)
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per sample on stdout.", rich_help_panel=OUTPUT)
    ] = False,
    interactive: Annotated[
        bool,
        typer.Option(help="Read prompts from stdin, one a line; the state carries on.", rich_help_panel=OUTPUT),
    ] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "cpu",
    precision: Annotated[
        StepPrecision, typer.Option(help="Matrices of the inference step (bf16: faster on CPUs with bf16).")
    ] = StepPrecision.fp32,
) -> None:
    """Sample text from a language model, printing each token as it is made.

    Example: [bold]lstmtext generate --seed "ROMEO:" --length 300 --temperature 0.8 --random-state 1[/]
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
    torch_device = select_device(device)
    checkpoint = load_checkpoint(model or default_lm_dir(), task="lm", device=str(torch_device))
    assert isinstance(checkpoint.model, LanguageModel)
    tokenizer = checkpoint.tokenizer
    session = Session(checkpoint.model, tokenizer, config, make_generator(random_state, torch_device))
    threads = torch.get_num_threads()
    if torch_device.type == "cpu" and session.rows == 1:
        # One row is a chain of small matrix-vector products: a second thread only adds hand-offs.
        torch.set_num_threads(1)
    try:
        if interactive:
            _interactive(session, tokenizer)
            return
        _warn_unknown(tokenizer, seed)
        session.feed(seed)
        if config.beam > 1:
            _beam(session, seed, as_json)
        elif config.num_samples > 1:
            _many_samples(session, seed, as_json)
        else:
            _one_sample(session, seed, as_json)
    finally:
        torch.set_num_threads(threads)  # the CLI also runs in-process (tests, notebooks)
