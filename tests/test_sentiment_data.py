"""The data of the embedded sentiment model: what `prepare` keeps out of training, and the LM text."""

from pathlib import Path

from benchmarks.sentiment_quality import prepare, read_tsv


def write(path: Path, rows: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{label}\t{text}\n" for label, text in rows), encoding="utf-8")


def test_prepare_keeps_test_sentences_out_and_the_lm_text_is_imdb_train_only(tmp_path: Path) -> None:
    corpora = tmp_path / "corpora"
    write(corpora / "sst2" / "train.tsv", [("positive", "a warm and funny film"), ("negative", "dull")])
    write(corpora / "sst2" / "dev.tsv", [("positive", "the cast is superb throughout the whole picture")])
    write(corpora / "sst2" / "test.tsv", [("negative", "a tedious mess from start to finish , sadly")])
    imdb = [("negative" if i % 2 else "positive", f"imdb review number {i} with words") for i in range(8)]
    write(corpora / "imdb" / "train.tsv", imdb)
    write(
        corpora / "mr" / "all.tsv",
        [
            ("negative", "a tedious mess from start to finish , sadly"),  # an SST-2 test sentence
            ("positive", "honestly , the cast is superb throughout the whole picture and more"),  # holds dev
            ("positive", "an unrelated snippet about a charming comedy"),
        ],
    )
    out = tmp_path / "data"

    counts = prepare(corpora, out, val_imdb=2)

    train = read_tsv(out / "train.tsv")
    texts = {text for _, text in train}
    assert "an unrelated snippet about a charming comedy" in texts
    assert not any("tedious mess" in text or "cast is superb" in text for text in texts)
    assert counts["mr_kept"] == 1 and counts["mr_left_out"] == 2
    val_texts = [text for _, text in read_tsv(out / "val.tsv")]
    assert val_texts[0] == "the cast is superb throughout the whole picture" and len(val_texts) == 3
    held_out = set(val_texts[1:])
    lm_lines = (out / "lm.txt").read_text(encoding="utf-8").splitlines()
    # IMDb training reviews only: no SST-2 or MR text (MR's cross-validation starts from this LM),
    # and none of the reviews held out to validate the classifier.
    assert sorted(lm_lines) == sorted(text for _, text in imdb if text not in held_out)
    assert len(lm_lines) == 6
    assert (out / "lm-val.txt").read_text(encoding="utf-8").splitlines() == val_texts
