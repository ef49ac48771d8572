"""`lstmtext copies`: how much of a model's samples is copied from its corpus, and how repetitive."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lstmtext.cli.options import LanguageModelOption
from lstmtext.cli.untrusted import escaped, json_line
from lstmtext.data.reading import read_input
from lstmtext.data.sources import source_files
from lstmtext.errors import ConfigError, DataError
from lstmtext.lm.copying import NGRAM_BYTES, CopyingReport, measure_copying

SAMPLING = "Sampling"
SHOWN_CHARS = 60  # of each copied span, in the table


def read_samples(source: str) -> list[str]:
    """Texts from a file (or - for stdin), read under the limit every text input has: JSON lines
    (objects with "text", as `generate --json` writes, or strings), else blocks separated by
    blank lines."""
    text = read_input(source, name=None if source != "-" else "<stdin>")
    lines = [line for line in text.splitlines() if line.strip()]
    if lines and all(line.lstrip().startswith(("{", '"')) for line in lines):
        samples = []
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{source}:{number}: not a JSON line ({error.msg})") from None
            if isinstance(record, dict) and isinstance(record.get("text"), str):
                samples.append(record["text"])
            elif isinstance(record, str):
                samples.append(record)
            else:
                raise DataError(f'{source}:{number}: a JSON line is a string or an object with "text"')
        return samples
    blocks = [block.strip("\n") for block in text.replace("\r\n", "\n").split("\n\n")]
    return [block for block in blocks if block.strip()]


def generate_samples(
    model: Path | None, seed: str, samples: int, length: int, temperature: float, random_state: int
) -> list[str]:
    """`samples` continuations of `seed` by the model, as `lstmtext generate` makes them."""
    from lstmtext.core.model import LanguageModel
    from lstmtext.lm.generate import GenerateConfig, generate
    from lstmtext.lm.sample import make_generator
    from lstmtext.pretrained import default_lm_dir
    from lstmtext.runs.checkpoint import load_checkpoint

    config = GenerateConfig(length=length, temperature=temperature, num_samples=samples)
    checkpoint = load_checkpoint(model or default_lm_dir(), task="lm", device="cpu")
    assert isinstance(checkpoint.model, LanguageModel)
    return generate(checkpoint.model, checkpoint.tokenizer, seed, config, make_generator(random_state))


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _shown(text: str) -> str:
    flat = text.replace("\n", "\u23ce")
    return escaped(flat if len(flat) <= SHOWN_CHARS else flat[: SHOWN_CHARS - 1] + "\u2026")


def render(report: CopyingReport) -> None:
    table = Table(box=None, header_style="bold")
    headers = ("sample", "chars", "longest\ncopy", f"{report.n}-grams\nfound", "distinct-1", "distinct-2")
    for header in (*headers, "repeated\n4-grams"):
        width = max(len(line) for line in header.split("\n"))
        table.add_column(header, justify="right", no_wrap=True, min_width=width)
    # One line a sample: the copied span is cut to the width left.
    table.add_column("copied text", no_wrap=True, overflow="ellipsis", min_width=12)
    for number, sample in enumerate(report.samples):
        table.add_row(
            str(number),
            str(sample.chars),
            ("\u2265" if sample.longest_at_least else "") + str(sample.longest_chars),
            _share(sample.ngram_share),
            _ratio(sample.distinct_1),
            _ratio(sample.distinct_2),
            _share(sample.repetition),
            _shown(sample.longest.text) if sample.longest else "",
        )
    table.add_row(
        "all",
        str(sum(s.chars for s in report.samples)),
        str(report.longest_chars),
        _share(report.ngram_share),
        _ratio(report.distinct_1),
        _ratio(report.distinct_2),
        _share(report.repetition),
        "",
        style="bold",
    )
    console = Console(soft_wrap=False)
    console.print(table)
    where = (
        f"; the longest at {escaped(report.longest.file)} byte {report.longest.byte}"
        if report.longest
        else ""
    )
    console.print(
        f"{len(report.samples)} samples against {report.corpus_bytes:,} bytes of corpus "
        f"in {report.seconds:.1f} s{where}",
        highlight=False,
    )


def copies(
    corpus: Annotated[
        list[str],
        typer.Option(
            "--corpus", "-c", help="Training text: a file, a folder of .txt, a corpus name; repeatable."
        ),
    ],
    model: LanguageModelOption = None,
    samples: Annotated[int, typer.Option(min=1, help="Samples to generate.", rich_help_panel=SAMPLING)] = 10,
    length: Annotated[int, typer.Option(min=1, help="Tokens per sample.", rich_help_panel=SAMPLING)] = 500,
    seed: Annotated[
        str,
        typer.Option(help="Prime text (not measured); empty: after a line break.", rich_help_panel=SAMPLING),
    ] = "",
    temperature: Annotated[
        float, typer.Option(help="Below 1: safer, above 1: wilder; 0 is greedy.", rich_help_panel=SAMPLING)
    ] = 1.0,
    random_state: Annotated[
        int,
        typer.Option(
            help="Seed of the sampler: the same state gives the same text.", rich_help_panel=SAMPLING
        ),
    ] = 1,
    samples_file: Annotated[
        str | None,
        typer.Option(
            help="Measure these texts instead of generating: JSON lines (as generate --json writes) "
            "or blocks separated by blank lines; - for stdin.",
            show_default=False,
        ),
    ] = None,
    ngram: Annotated[
        int, typer.Option(min=4, help="Bytes per n-gram (characters of ASCII text).")
    ] = NGRAM_BYTES,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """How much of a model's samples is copied from its corpus, and how repetitive they are.

    For each sample: the longest span found verbatim in the corpus, the share of its n-grams
    the corpus holds, distinct-1/2 and the share of its word 4-grams that repeat. The samples
    are generated from the model (or read from --samples-file); the corpus is read once, in
    chunks: seconds for 100 MB. A span of hundreds of characters, or most n-grams found, means
    the model recites its training text rather than writing its own.

    Example: [bold]lstmtext copies --model shakespeare --corpus tinyshakespeare --samples 10[/]
    """
    paths = [path for source in corpus for path in source_files(source)]
    if samples_file is not None:
        if model is not None:
            raise ConfigError("--samples-file measures texts already made: leave out --model")
        texts = read_samples(samples_file)
        if not texts:
            raise DataError(f"{samples_file}: no samples in it")
    else:
        texts = generate_samples(model, seed, samples, length, temperature, random_state)
    report = measure_copying(texts, paths, n=ngram)
    if as_json:
        typer.echo(json_line(report.to_dict()))
    else:
        render(report)
