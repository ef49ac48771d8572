"""The data of the embedded sentiment model: the review language model's text and the classifier's mixture.

    python -m recipes.sentiment_data --out runs/sentiment-data

writes, from ../shared/corpora:

- `lm.txt`: every unlabelled review and opinion text at hand, one a line, shuffled so that
  each of the language model's parallel streams reads all kinds of text: IMDb train and
  unsup (less the unsup reviews that are copies of IMDb test reviews), the Amazon train
  texts, the tweets' train texts (all three classes) and the SST-2 train sentences. Nothing
  held out for validation below and no test text of any set is in it.
- `lm-val.txt`: the validation texts, to follow the language model's loss.
- `train.tsv`: the classifier's labelled mixture (see `mix_sources`) of SST-2 train and
  its phrases, IMDb train, MR less its copies of SST-2 dev/test sentences, each Amazon
  domain's train file and the tweets' positive and negative rows.
- `val.tsv`: a mix of domains to pick the best checkpoint: SST-2 dev, and held out of the
  train files 500 IMDb reviews, 100 reviews of each Amazon domain and 1,000 tweets, half of
  each class.
- `tweets-train.tsv`, `tweets-val.tsv`: the three-class tweets (negative, neutral, positive)
  for the SemEval-2017 classifier, its validation 2,000 tweets held out of train.
- `mr-lm.txt`, `mr-lm-val.txt`, `mr-base.tsv`, `mr-base-val.tsv`: what a model scored on MR may
  learn from, since MR is SST's source: the LM text and its validation without any SST-2
  text, and a labelled mixture of IMDb, Amazon and the tweets (neither SST-2 nor MR) with its
  validation, for the classifier the MR folds start from (`benchmarks.sentiment_quality`).
- `counts.json`: what each source gave.

The mixture: no one source may swamp the others, so source s of n_s examples gets a share
of the training stream proportional to n_s ** ALPHA (ALPHA = 0.5: the phrases' 67,000 rows
weigh 3.1 times SST-2's 6,900 sentences, not 9.7 times). A source is read in shuffled
passes: a large one is cut short, never repeated before all its rows are used; a small one
is read more than once.

Any text that is a test or validation text of a set we score (SST-2 dev/test in MR and the
phrases, IMDb test in unsup) is left out of everything the models learn from.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPORA = REPO.parent / "shared" / "corpora"
AMAZON_DOMAINS = ("books", "dvd", "electronics", "kitchen")
SHINGLE = 6  # words in a run shared with a held-out sentence that marks an MR row as a copy
ALPHA = 0.5
VAL_IMDB = 500
VAL_AMAZON = 100  # a domain
VAL_TWEETS = 1000  # positive and negative, for the two-class mixture
VAL_TWEETS3 = 2000  # three classes, for the SemEval classifier
MIXTURE_SIZE = 200_000
MR_BASE_SIZE = 100_000

Row = tuple[str, str]


def read_tsv(path: Path) -> list[Row]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        label, text = line.split("\t", 1)
        rows.append((label, text))
    return rows


def write_tsv(path: Path, rows: Iterable[Row]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{label}\t{text}\n" for label, text in rows]
    path.write_text("".join(lines), encoding="utf-8")
    return len(lines)


def write_lines(path: Path, texts: Iterable[str]) -> int:
    lines = [text + "\n" for text in texts]
    path.write_text("".join(lines), encoding="utf-8")
    return len(lines)


def words(text: str) -> tuple[str, ...]:
    """Lower-case alphanumeric words, with SST's PTB escapes undone, so both sets compare alike."""
    text = text.lower().replace("-lrb-", "(").replace("-rrb-", ")").replace("\\/", "/")
    return tuple(re.findall(r"[a-z0-9]+", text))


def grams(tokens: tuple[str, ...], n: int) -> Iterable[tuple[str, ...]]:
    return (tokens[i : i + n] for i in range(len(tokens) - n + 1))


def leaks(rows: Sequence[Row], held_out: Iterable[str]) -> list[bool]:
    """For each row: does it share a run of SHINGLE words with a held-out text, hold a whole
    held-out text of three words or more, or, when it is short itself, sit inside one? (A
    held-out text of a word or two, "brilliant", only matches itself: a run that short is no copy.)"""
    long_runs: set[tuple[str, ...]] = set()
    short_texts: set[tuple[str, ...]] = set()
    inner_runs: set[tuple[str, ...]] = set()  # every shorter run of a held-out text
    for text in held_out:
        tokens = words(text)
        long_runs.update(grams(tokens, SHINGLE))
        if 3 <= len(tokens) < SHINGLE:
            short_texts.add(tokens)
        for n in range(1, SHINGLE):
            inner_runs.update(grams(tokens, n))
    flags = []
    for _, text in rows:
        tokens = words(text)
        if len(tokens) >= SHINGLE:
            hit = any(g in long_runs for g in grams(tokens, SHINGLE))
        else:
            hit = tokens in inner_runs
        flags.append(hit or any(g in short_texts for n in range(3, SHINGLE) for g in grams(tokens, n)))
    return flags


def hold_out(rows: Sequence[Row], per_label: int, rng: random.Random) -> tuple[list[Row], list[Row]]:
    """(kept, held): `per_label` rows of each label drawn at random, the rest kept in order."""
    held: set[int] = set()
    for label in sorted({lab for lab, _ in rows}):
        members = [i for i, (lab, _) in enumerate(rows) if lab == label]
        held.update(rng.sample(members, min(per_label, len(members))))
    kept = [row for i, row in enumerate(rows) if i not in held]
    return kept, [rows[i] for i in sorted(held)]


def source_shares(sizes: Mapping[str, int], alpha: float = ALPHA) -> dict[str, float]:
    """Each source's share of the mixture: proportional to its size to the power alpha."""
    weights = {name: n**alpha for name, n in sizes.items() if n > 0}
    total = sum(weights.values())
    return {name: w / total for name, w in weights.items()}


def mix_sources(
    sources: Mapping[str, Sequence[Row]], size: int, alpha: float = ALPHA, seed: int = 0
) -> tuple[list[Row], dict[str, int]]:
    """A shuffled mixture of `size` rows in which source s has a share proportional to n_s ** alpha.

    Each source is read in shuffled passes, so a large source contributes distinct rows and a
    small one repeats only after all of its rows are in. Returns the rows and the count taken
    from each source.
    """
    rng = random.Random(seed)
    shares = source_shares({name: len(rows) for name, rows in sources.items()}, alpha)
    quotas = {name: round(share * size) for name, share in shares.items()}
    mixture: list[Row] = []
    for name, quota in quotas.items():
        rows = list(sources[name])
        taken: list[Row] = []
        while len(taken) < quota:
            rng.shuffle(rows)
            taken.extend(rows[: quota - len(taken)])
        mixture.extend(taken)
    rng.shuffle(mixture)
    return mixture, quotas


def normalised(text: str) -> str:
    return " ".join(text.split())


def prepare(corpora: Path, out: Path, size: int = MIXTURE_SIZE, seed: int = 0) -> dict[str, object]:
    rng = random.Random(seed)
    sst_train = read_tsv(corpora / "sst2" / "train.tsv")
    sst_dev = read_tsv(corpora / "sst2" / "dev.tsv")
    sst_test = read_tsv(corpora / "sst2" / "test.tsv")
    sst_held = {words(text) for _, text in sst_dev + sst_test}
    phrases = [row for row in read_tsv(corpora / "sst2" / "phrases.tsv") if words(row[1]) not in sst_held]
    mr = read_tsv(corpora / "mr" / "all.tsv")
    mr_kept = [
        row
        for row, leaked in zip(mr, leaks(mr, (t for _, t in sst_dev + sst_test)), strict=True)
        if not leaked
    ]
    imdb_train, imdb_val = hold_out(read_tsv(corpora / "imdb" / "train.tsv"), VAL_IMDB // 2, rng)
    imdb_test = {normalised(text) for _, text in read_tsv(corpora / "imdb" / "test.tsv")}
    unsup_all = (corpora / "imdb" / "unsup.txt").read_text(encoding="utf-8").splitlines()
    unsup = [text for text in unsup_all if normalised(text) not in imdb_test]
    amazon_train: dict[str, list[Row]] = {}
    amazon_val: list[Row] = []
    for domain in AMAZON_DOMAINS:
        kept, held = hold_out(read_tsv(corpora / "amazon" / f"{domain}.train.tsv"), VAL_AMAZON // 2, rng)
        amazon_train[domain] = kept
        amazon_val += held
    tweets = read_tsv(corpora / "tweets" / "train.tsv")
    tweets3_train, tweets3_val = hold_out(tweets, VAL_TWEETS3 // 3, rng)
    polar = [row for row in tweets3_train if row[0] != "neutral"]
    tweets_train, tweets_val = hold_out(polar, VAL_TWEETS // 2, rng)

    val = sst_dev + imdb_val + amazon_val + tweets_val
    sources: dict[str, Sequence[Row]] = {
        "sst2": sst_train,
        "sst2-phrases": phrases,
        "imdb": imdb_train,
        "mr": mr_kept,
        **{f"amazon-{domain}": rows for domain, rows in amazon_train.items()},
        "tweets": tweets_train,
    }
    mixture, quotas = mix_sources(sources, size, seed=seed)
    lm_texts = (
        [text for _, text in imdb_train]
        + unsup
        + [text for rows in amazon_train.values() for _, text in rows]
        + [text for _, text in tweets3_train]
        + [text for _, text in sst_train]
    )
    held_texts = {text for _, text in val + tweets3_val}
    lm_texts = [text for text in lm_texts if text not in held_texts]
    rng.shuffle(lm_texts)

    sst_texts = {text for _, text in sst_train + sst_dev + sst_test}
    mr_base_sources = {
        name: rows for name, rows in sources.items() if name not in ("sst2", "sst2-phrases", "mr")
    }
    mr_base, mr_base_quotas = mix_sources(mr_base_sources, MR_BASE_SIZE * size // MIXTURE_SIZE, seed=seed)
    mr_base_val = imdb_val + amazon_val + tweets_val
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, object] = {
        "sources": {name: len(rows) for name, rows in sources.items()},
        "mixture": quotas,
        "mr_left_out": len(mr) - len(mr_kept),
        "unsup_copies_of_imdb_test": len(unsup_all) - len(unsup),
        "train": write_tsv(out / "train.tsv", mixture),
        "val": write_tsv(out / "val.tsv", val),
        "lm": write_lines(out / "lm.txt", lm_texts),
        "lm_val": write_lines(out / "lm-val.txt", [text for _, text in val]),
        "tweets_train": write_tsv(out / "tweets-train.tsv", tweets3_train),
        "tweets_val": write_tsv(out / "tweets-val.tsv", tweets3_val),
        "mr_lm": write_lines(out / "mr-lm.txt", [text for text in lm_texts if text not in sst_texts]),
        "mr_lm_val": write_lines(out / "mr-lm-val.txt", [text for _, text in mr_base_val]),
        "mr_base": write_tsv(out / "mr-base.tsv", mr_base),
        "mr_base_mixture": mr_base_quotas,
        "mr_base_val": write_tsv(out / "mr-base-val.tsv", mr_base_val),
    }
    (out / "counts.json").write_text(json.dumps(counts, indent=1) + "\n", encoding="utf-8")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.sentiment_data", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--corpora", type=Path, default=CORPORA, help="the shared corpora folder")
    parser.add_argument("--out", type=Path, default=Path("runs/sentiment-data"))
    parser.add_argument("--size", type=int, default=MIXTURE_SIZE, help="rows of the classifier's mixture")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(prepare(args.corpora, args.out, args.size, args.seed)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
