"""The data of the embedded sentiment model: the mixture across sources, and what is kept out of training."""

from collections import Counter
from pathlib import Path

import pytest

from recipes.sentiment_data import AMAZON_DOMAINS, mix_sources, prepare, read_tsv, source_shares
from tests.conftest import write_labelled


def rows(
    source: str, count: int, labels: tuple[str, ...] = ("negative", "positive")
) -> list[tuple[str, str]]:
    return [(labels[i % len(labels)], f"{source} text number {i} with some words") for i in range(count)]


def test_shares_grow_as_the_square_root_of_size() -> None:
    shares = source_shares({"small": 100, "large": 10_000, "empty": 0})
    assert set(shares) == {"small", "large"}
    assert shares["large"] / shares["small"] == pytest.approx(10.0)
    assert sum(shares.values()) == pytest.approx(1.0)


def test_mixture_reads_large_sources_without_repeats_and_repeats_small_ones_evenly() -> None:
    sources = {"small": rows("small", 4), "large": rows("large", 400)}
    mixture, quotas = mix_sources(sources, size=110, seed=3)
    # sqrt(4) : sqrt(400) = 2 : 20 of 110 rows
    assert quotas == {"small": 10, "large": 100}
    counts = Counter(mixture)
    large = [row for row in counts if row[1].startswith("large")]
    assert len(large) == 100 and all(counts[row] == 1 for row in large)
    small = [counts[row] for row in sources["small"]]
    assert sum(small) == 10 and max(small) - min(small) <= 1  # passes: 4 + 4 + 2
    assert mixture != sorted(mixture, key=lambda row: row[1].startswith("large"))  # interleaved
    assert mix_sources(sources, size=110, seed=3)[0] == mixture  # seeded


def test_prepare_keeps_test_text_out_and_mixes_every_source(tmp_path: Path) -> None:
    corpora = tmp_path / "corpora"
    sst_test = ("negative", "a tedious mess from start to finish , sadly")
    write_labelled(corpora / "sst2" / "train.tsv", rows("sst", 20))
    write_labelled(
        corpora / "sst2" / "dev.tsv", [("positive", "the cast is superb throughout the whole picture")]
    )
    write_labelled(corpora / "sst2" / "test.tsv", [sst_test])
    write_labelled(
        corpora / "sst2" / "phrases.tsv", rows("phrase", 30) + [sst_test]
    )  # a phrase equal to a test sentence
    mr = rows("mr", 10) + [("negative", "honestly , a tedious mess from start to finish , sadly !")]
    write_labelled(corpora / "mr" / "all.tsv", mr)
    write_labelled(corpora / "imdb" / "train.tsv", rows("imdb", 600))
    imdb_test = rows("imdbtest", 4)
    write_labelled(corpora / "imdb" / "test.tsv", imdb_test)
    unsup = [f"unlabelled review {i}" for i in range(10)] + [imdb_test[0][1]]  # a copy of a test review
    (corpora / "imdb" / "unsup.txt").write_text("".join(t + "\n" for t in unsup), encoding="utf-8")
    for domain in AMAZON_DOMAINS:
        write_labelled(corpora / "amazon" / f"{domain}.train.tsv", rows(domain, 120))
    write_labelled(corpora / "tweets" / "train.tsv", rows("tweet", 6000, ("negative", "neutral", "positive")))
    out = tmp_path / "data"

    counts = prepare(corpora, out, size=5000)

    assert counts["unsup_copies_of_imdb_test"] == 1 and counts["mr_left_out"] == 1
    train = read_tsv(out / "train.tsv")
    val = read_tsv(out / "val.tsv")
    assert len(train) == sum(counts["mixture"].values())
    kinds = Counter(text.split()[0] for _, text in train)
    assert set(kinds) == {"sst", "phrase", "mr", "imdb", "tweet", *AMAZON_DOMAINS}
    assert {label for label, _ in train} == {"negative", "positive"}  # no neutral tweets
    held_out = {text for _, text in val} | {sst_test[1]} | {text for _, text in imdb_test}
    assert not held_out & {text for _, text in train}
    assert not any("tedious mess" in text for _, text in train)
    # validation mixes the domains, half of each class
    assert Counter(text.split()[0] for _, text in val if not text.startswith("the cast")) == {
        "imdb": 500, "tweet": 1000, **{domain: 100 for domain in AMAZON_DOMAINS}
    }  # fmt: skip
    lm = (out / "lm.txt").read_text(encoding="utf-8").splitlines()
    assert not held_out & set(lm)
    assert "unlabelled review 3" in lm and any(t.startswith("tweet") for t in lm)
    assert (out / "lm-val.txt").read_text(encoding="utf-8").splitlines() == [text for _, text in val]
    tweets3 = read_tsv(out / "tweets-train.tsv")
    assert {label for label, _ in tweets3} == {"negative", "neutral", "positive"}
    assert not {text for _, text in tweets3} & {text for _, text in read_tsv(out / "tweets-val.tsv")}
    # what an MR run may learn from: no SST-2 text (MR is its source) and no MR row
    mr_lm = (out / "mr-lm.txt").read_text(encoding="utf-8").splitlines()
    assert not any(t.startswith("sst") for t in mr_lm) and set(mr_lm) == {
        t for t in lm if not t.startswith("sst")
    }
    mr_base = read_tsv(out / "mr-base.tsv")
    assert set(Counter(text.split()[0] for _, text in mr_base)) == {"imdb", "tweet", *AMAZON_DOMAINS}
    assert len(mr_base) == sum(counts["mr_base_mixture"].values())
    assert abs(len(mr_base) - 2500) <= 6  # half the mixture's size, each quota rounded
    mr_base_val = read_tsv(out / "mr-base-val.tsv")
    assert mr_base_val == [row for row in val if not row[1].startswith("the cast")]
    assert (out / "mr-lm-val.txt").read_text(encoding="utf-8").splitlines() == [t for _, t in mr_base_val]
    assert not {text for _, text in mr_base_val} & {text for _, text in mr_base}
