"""The fast inference step against the core, incremental decoding, streaming, beam search, the CLI."""

from __future__ import annotations

import itertools
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from lstmtext import pretrained
from lstmtext.config import ModelConfig, TokenizerConfig
from lstmtext.core.inference import InferenceStep, bf16_available
from lstmtext.core.model import LanguageModel
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.errors import CheckpointError, ConfigError
from lstmtext.lm.generate import GenerateConfig, IncrementalDecoder, Session, StopFilter, generate, stream
from lstmtext.lm.sample import make_generator
from lstmtext.pretrained.build import build
from lstmtext.runs.checkpoint import load_checkpoint

from .conftest import TINY_TEXT

SEED = "To be"


def random_model(layers: int = 2, vocab: int = 40, embed: int = 8, hidden: int = 16, tie: bool = False):
    torch.manual_seed(layers * 100 + vocab)
    config = ModelConfig(
        vocab_size=vocab, embedding_dim=embed, hidden_size=hidden, num_layers=layers, tie_weights=tie
    )
    return LanguageModel(config).eval()


# ---- the fast step computes what the core computes


@pytest.mark.parametrize(
    ("layers", "table", "tie"),
    [
        (1, True, False),
        (2, True, False),
        (3, True, False),
        (2, False, False),
        (3, False, False),
        (2, True, True),
    ],
)
def test_fast_step_equals_the_core(layers: int, table: bool, tie: bool) -> None:
    model = random_model(layers, embed=16 if tie else 8, tie=tie)
    step = InferenceStep(model, table_limit=1 << 30 if table else 0)
    assert step.use_table is table
    ids = torch.randint(0, 40, (3, 15), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, (hidden, cell) = model(ids)
    state = step.new_state(3)
    logits = torch.stack([step.step(ids[:, t], state).clone() for t in range(ids.shape[1])], dim=1)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    got_hidden, got_cell = step.to_core_state(state)
    torch.testing.assert_close(got_hidden, hidden, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_cell, cell, atol=1e-5, rtol=1e-5)
    # One row takes the other weight layout (see InferenceStep._weights_for): the same numbers.
    single = step.new_state(1)
    row = torch.stack([step.step(ids[:1, t], single).clone() for t in range(ids.shape[1])], dim=1)
    torch.testing.assert_close(row, expected[:1], atol=1e-5, rtol=1e-5)


def test_prime_then_steps_equal_the_core_over_the_whole_text(tiny_lm: Path) -> None:
    model = load_checkpoint(tiny_lm, task="lm").model
    step = InferenceStep(model)
    ids = torch.randint(3, model.config.vocab_size, (2, 20), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, _ = model(ids)
    state = step.new_state(2)
    logits = [step.prime(ids[:, :12], state)]
    logits += [step.step(ids[:, t], state).clone() for t in range(12, 20)]
    torch.testing.assert_close(torch.stack(logits, dim=1), expected[:, 11:], atol=1e-5, rtol=1e-5)


def test_state_reorder_moves_rows() -> None:
    step = InferenceStep(random_model())
    state = step.new_state(3)
    for t in range(4):
        step.step(torch.tensor([1 + t, 5 + t, 9 + t]), state)
    hidden, cell = step.to_core_state(state)
    state.reorder(torch.tensor([2, 2, 0]))
    new_hidden, new_cell = step.to_core_state(state)
    torch.testing.assert_close(new_hidden, hidden[:, [2, 2, 0]])
    torch.testing.assert_close(new_cell, cell[:, [2, 2, 0]])


@pytest.mark.skipif(not bf16_available(), reason="no bf16 matrix product on this CPU")
def test_bf16_step_stays_close_to_the_core() -> None:
    model = random_model(2, hidden=32)
    step = InferenceStep(model, precision="bf16")
    ids = torch.randint(0, 40, (2, 10), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected, _ = model(ids)
    state = step.new_state(2)
    logits = torch.stack([step.step(ids[:, t], state).clone() for t in range(10)], dim=1)
    assert (logits - expected).abs().max().item() < 2e-2


def test_unknown_step_precision_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        InferenceStep(random_model(), precision="int8")


# ---- incremental decoding


def pieces_of(tokenizer: TextTokenizer, context: list[int], ids: list[int]) -> list[str]:
    decoder = IncrementalDecoder(tokenizer, context)
    return [decoder.push(i) for i in ids] + [decoder.flush()]


@pytest.mark.parametrize("level", ["char", "bpe"])
def test_pieces_join_to_the_decoded_text_across_split_characters(level: str) -> None:
    tokenizer = TextTokenizer.train([TINY_TEXT], TokenizerConfig(level=level, vocab_size=300))
    text = "To be ☃ or é, 日本語 not\n"  # none of these seen in training: bytes / byte-level BPE
    ids = tokenizer.encode(text)
    pieces = pieces_of(tokenizer, [], ids)
    assert "".join(pieces) == tokenizer.decode(ids) == text
    assert all("\ufffd" not in piece for piece in pieces)  # no half characters ever shown
    assert len([p for p in pieces if p]) > 5  # and the text did stream


def test_pieces_stay_whole_when_bytes_never_complete() -> None:
    tokenizer = TextTokenizer.train([TINY_TEXT], TokenizerConfig(level="char"))
    ids = tokenizer.encode("ab") + tokenizer.encode("☃")[:2] + tokenizer.encode("cd")
    assert "".join(pieces_of(tokenizer, [], ids)) == tokenizer.decode(ids)
    assert "".join(pieces_of(tokenizer, [], ids[:4])) == tokenizer.decode(ids[:4])


def test_word_pieces_take_their_space_from_the_context() -> None:
    tokenizer = TextTokenizer.train([TINY_TEXT], TokenizerConfig(level="word"))
    context = tokenizer.encode("To be")
    ids = tokenizer.encode("or not to be, that\nis the")
    joined = "".join(pieces_of(tokenizer, context[-1:], ids))
    assert joined == " or not to be, that\nis the"
    assert tokenizer.decode(context) + joined == tokenizer.decode(context + ids)


def test_stop_filter_finds_a_stop_split_across_pieces() -> None:
    stop = StopFilter("END")
    out = [stop.push(p) for p in ["abc E", "N", "xE", "ND tail"]]
    assert "".join(out) == "abc ENx"  # "xE" + "ND tail" holds the stop
    assert stop.stopped and stop.push("more") == "" and stop.flush() == ""
    open_end = StopFilter("END")
    assert open_end.push("abcE") == "abc" and open_end.flush() == "E"


# ---- streaming, samples, beam search


def greedy_by_rerunning(model: LanguageModel, ids: list[int], length: int) -> list[int]:
    """The slow reference: feed the whole prefix again for every token."""
    ids = list(ids)
    with torch.no_grad():
        for _ in range(length):
            logits, _ = model(torch.tensor([ids]))
            logits = logits[0, -1].clone()
            logits[:259] = float("-inf")  # specials and bytes are never sampled at char level
            ids.append(int(logits.argmax()))
    return ids


def test_greedy_stream_equals_rerunning_the_prefix(tiny_lm: Path) -> None:
    checkpoint = load_checkpoint(tiny_lm, task="lm")
    tokenizer = checkpoint.tokenizer
    config = GenerateConfig(length=40, greedy=True)
    text = "".join(stream(checkpoint.model, tokenizer, SEED, config, None))
    prompt = tokenizer.encode(SEED)
    expected = greedy_by_rerunning(checkpoint.model, prompt, 40)[len(prompt) :]
    assert text == tokenizer.decode(expected)


def test_same_random_state_same_text(tiny_lm: Path) -> None:
    checkpoint = load_checkpoint(tiny_lm, task="lm")
    config = GenerateConfig(length=60, temperature=1.2, top_p=0.95)

    def text(seed: int) -> str:
        return "".join(stream(checkpoint.model, checkpoint.tokenizer, SEED, config, make_generator(seed)))

    assert text(11) == text(11)
    assert text(11) != text(12)


def test_samples_in_one_batch(tiny_lm: Path) -> None:
    checkpoint = load_checkpoint(tiny_lm, task="lm")
    samples = generate(
        checkpoint.model,
        checkpoint.tokenizer,
        SEED,
        GenerateConfig(length=30, num_samples=4),
        make_generator(3),
    )
    assert len(samples) == 4 and len(set(samples)) > 1
    greedy = generate(
        checkpoint.model,
        checkpoint.tokenizer,
        SEED,
        GenerateConfig(length=30, num_samples=3, greedy=True),
        None,
    )
    single = "".join(
        stream(checkpoint.model, checkpoint.tokenizer, SEED, GenerateConfig(length=30, greedy=True), None)
    )
    assert greedy == [single] * 3


def test_stop_string_ends_the_sample(tiny_lm: Path) -> None:
    checkpoint = load_checkpoint(tiny_lm, task="lm")
    full = "".join(
        stream(checkpoint.model, checkpoint.tokenizer, SEED, GenerateConfig(length=80, greedy=True), None)
    )
    stop = full[20:23]
    config = GenerateConfig(length=80, greedy=True, stop=stop)
    cut = "".join(stream(checkpoint.model, checkpoint.tokenizer, SEED, config, None))
    assert cut == full[: full.find(stop)]


def test_session_carries_state_between_prompts(tiny_lm: Path) -> None:
    checkpoint = load_checkpoint(tiny_lm, task="lm")
    tokenizer = checkpoint.tokenizer
    config = GenerateConfig(length=10, greedy=True)
    session = Session(checkpoint.model, tokenizer, config, None)
    session.feed("To be")
    first = "".join(piece for _, piece in session.sample())
    session.feed(", or")
    second = "".join(piece for _, piece in session.sample())
    # The same as one pass over everything so far.
    prompt = tokenizer.encode("To be" + first + ", or")
    expected = greedy_by_rerunning(checkpoint.model, prompt, 10)[len(prompt) :]
    assert second == tokenizer.decode(expected)


def test_choosing_the_top_tokens_one_by_one(tiny_lm: Path) -> None:
    checkpoint = load_checkpoint(tiny_lm, task="lm")
    model, tokenizer = checkpoint.model, checkpoint.tokenizer
    session = Session(model, tokenizer, GenerateConfig(length=10, greedy=True), None)
    session.feed("To be")
    top = session.top_tokens(5)
    probabilities = [p for _, p, _ in top]
    assert len(top) == 5 and probabilities == sorted(probabilities, reverse=True)
    with torch.no_grad():
        logits, _ = model(torch.tensor([tokenizer.encode("To be")]))
    expected = logits[0, -1].softmax(-1)
    assert top[0][0] == int(expected[259:].argmax()) + 259  # specials and bytes are never offered
    assert all(p >= expected[i].item() - 1e-6 for i, p, _ in top)  # renormalised without them
    assert [text for _, _, text in top] == [tokenizer.decode([i]) for i, _, _ in top]
    # Picking the second, then the first: the state is that of the text with those characters.
    second = session.choose(top[1][0])
    first = session.choose(session.top_tokens(1)[0][0])
    rest = "".join(piece for _, piece in session.sample())
    prompt = tokenizer.encode("To be" + second + first)
    assert rest == tokenizer.decode(greedy_by_rerunning(model, prompt, 10)[len(prompt) :])
    with pytest.raises(ConfigError):
        session.choose(10**6)


def test_beam_as_wide_as_the_vocabulary_is_exact(tiny_word_lm: Path) -> None:
    checkpoint = load_checkpoint(tiny_word_lm, task="lm")
    model, tokenizer = checkpoint.model, checkpoint.tokenizer
    vocab = model.config.vocab_size
    [text] = generate(model, tokenizer, "to be", GenerateConfig(length=2, beam=vocab), None)
    prompt = tokenizer.encode("to be")
    with torch.no_grad():
        first, state = model(torch.tensor([prompt]))
        first_logp = first[0, -1].log_softmax(-1)
        best, best_pair = float("-inf"), (0, 0)
        for a, b in itertools.product(range(1, vocab), repeat=2):  # <pad> is never sampled
            second, _ = model(torch.tensor([[a]]), state)
            score = float(first_logp[a] + second[0, -1].log_softmax(-1)[b])
            if score > best:
                best, best_pair = score, (a, b)
    assert text == tokenizer.decode(prompt[-1:] + list(best_pair))[len(tokenizer.decode(prompt[-1:])) :]


def test_generate_config_refuses_nonsense() -> None:
    for bad in (
        {"length": -1},
        {"num_samples": 0},
        {"beam": 0},
        {"stop": ""},
        {"top_p": 1.5},
        {"beam": 2, "num_samples": 2},
    ):
        with pytest.raises(ConfigError):
            GenerateConfig(**bad)  # type: ignore[arg-type]


# ---- the embedded model


def test_missing_embedded_model_says_how_to_build_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(pretrained, "PRETRAINED", tmp_path)
    with pytest.raises(CheckpointError, match="make pretrained"):
        pretrained.default_lm_dir()


def test_build_writes_a_small_fp16_checkpoint(tiny_lm: Path, tmp_path: Path) -> None:
    out = tmp_path / "shakespeare"
    size = build(tiny_lm, out)
    assert 0 < size < 10_000_000
    with safe_open(out / "model.safetensors", framework="pt") as weights:
        assert {weights.get_tensor(k).dtype for k in weights.keys()} == {torch.float16}  # noqa: SIM118
    model = load_checkpoint(out, task="lm").model
    assert next(model.parameters()).dtype == torch.float32


def test_without_model_option_the_embedded_model_is_used(
    cli, tiny_lm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build(tiny_lm, tmp_path / pretrained.ENGLISH)
    monkeypatch.setattr(pretrained, "PRETRAINED", tmp_path)
    args = ["generate", "--seed", SEED, "-n", "30", "--random-state", "4"]
    default = cli(args)
    assert default.exit_code == 0, default.stderr
    assert default.stdout == cli([*args, "--model", str(tmp_path / pretrained.ENGLISH)]).stdout
    assert default.stdout.startswith(SEED) and len(default.stdout) > len(SEED)


@pytest.mark.skipif(
    not (pretrained.PRETRAINED / pretrained.ENGLISH / "model.safetensors").exists(),
    reason="embedded model not built",
)
def test_embedded_model_generates_with_no_model_option(cli) -> None:
    result = cli(["generate", "--seed", "ROMEO:", "--length", "50", "--random-state", "1"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("ROMEO:") and len(result.stdout) > 40


# ---- the command


def test_cli_same_random_state_same_text(cli, tiny_lm: Path) -> None:
    args = ["generate", "--model", str(tiny_lm), "--seed", SEED, "--length", "40", "--random-state", "3"]
    first, second = cli(args), cli(args)
    assert first.exit_code == 0, first.stderr
    assert first.stdout == second.stdout
    assert first.stdout.startswith(SEED) and first.stderr == ""


def test_cli_json_and_samples(cli, tiny_lm: Path) -> None:
    result = cli(
        [
            "generate",
            "-m",
            str(tiny_lm),
            "-s",
            SEED,
            "-n",
            "20",
            "--num-samples",
            "3",
            "--json",
            "--random-state",
            "1",
        ]
    )
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["sample"] for r in rows] == [0, 1, 2] and all(r["seed"] == SEED for r in rows)
    text = cli(["generate", "-m", str(tiny_lm), "-s", SEED, "-n", "20", "--num-samples", "2"])
    assert text.stdout.count("--- sample ") == 2


def test_cli_stop_and_greedy(cli, tiny_lm: Path) -> None:
    full = cli(["generate", "-m", str(tiny_lm), "-s", SEED, "-n", "60", "--greedy", "--json"])
    text = json.loads(full.stdout)["text"]
    stop = text[15:18]
    cut = cli(["generate", "-m", str(tiny_lm), "-s", SEED, "-n", "60", "--greedy", "--stop", stop, "--json"])
    assert json.loads(cut.stdout)["text"] == text[: text.find(stop)]
    zero = cli(["generate", "-m", str(tiny_lm), "-s", SEED, "-n", "60", "--temperature", "0", "--json"])
    assert json.loads(zero.stdout)["text"] == text


def test_cli_unknown_characters_in_the_seed_warn_once(cli, tiny_lm: Path) -> None:
    result = cli(["generate", "-m", str(tiny_lm), "-s", "To ☃ bé", "-n", "20", "--random-state", "1"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("To ☃ bé")
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "warning" in lines[0] and "'☃'" in lines[0] and "'é'" in lines[0]


def test_cli_empty_seed_starts_after_a_line_break(cli, tiny_lm: Path) -> None:
    result = cli(["generate", "-m", str(tiny_lm), "-n", "30", "--random-state", "2"])
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout) > 10


@pytest.mark.parametrize(
    "bad",
    [
        ["--top-p", "1.5"],
        ["--temperature", "-1"],
        ["--top-k", "0"],
        ["--num-samples", "0"],
        ["--beam", "0"],
        ["--length", "-3"],
    ],
)
def test_cli_nonsense_values_are_usage_errors(cli, tiny_lm: Path, bad: list[str]) -> None:
    result = cli(["generate", "-m", str(tiny_lm), *bad])
    assert result.exit_code == 2
    assert result.stdout == ""


def test_cli_missing_model_is_one_line(cli, tmp_path: Path) -> None:
    result = cli(["generate", "-m", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert result.stderr.startswith("lstmtext: error:") and len(result.stderr.splitlines()) == 1


def test_cli_interactive_reads_prompts_from_stdin(cli, tiny_lm: Path) -> None:
    args = ["generate", "-m", str(tiny_lm), "--interactive", "-n", "15", "--greedy"]
    result = cli(args, input="To be\n\nThe slings\n")
    assert result.exit_code == 0, result.stderr
    checkpoint = load_checkpoint(tiny_lm, task="lm")
    session = Session(checkpoint.model, checkpoint.tokenizer, GenerateConfig(length=15, greedy=True), None)
    expected = ""
    for prompt in ["To be", "", "The slings"]:
        session.feed(prompt)
        expected += "".join(piece for _, piece in session.sample()) + "\n"
    assert result.stdout == expected


def test_cli_beam_on_a_word_model(cli, tiny_word_lm: Path) -> None:
    result = cli(["generate", "-m", str(tiny_word_lm), "-s", "to be", "-n", "6", "--beam", "3"])
    assert result.exit_code == 0, result.stderr
    checkpoint = load_checkpoint(tiny_word_lm, task="lm")
    [expected] = generate(
        checkpoint.model, checkpoint.tokenizer, "to be", GenerateConfig(length=6, beam=3), None
    )
    # What the tiny model finds likeliest may be line ends (<eos>); the CLI must print the library's beam.
    assert result.stdout.startswith("to be" + expected.rstrip("\n"))
    assert len(result.stdout) > len("to be")


@pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("head") is None, reason="needs bash and head"
)
def test_writing_into_a_closed_pipe_ends_quietly(tiny_lm: Path) -> None:
    """`lstmtext generate ... | head -c 100`: head leaves early; generate stops with 0 and says nothing."""
    generate_command = [sys.executable, "-m", "lstmtext", "generate", "-m", str(tiny_lm)]
    generate_command += ["-n", "100000", "--random-state", "1"]
    pipeline = f"set -o pipefail; {shlex.join(generate_command)} | head -c 100"
    done = subprocess.run(["bash", "-c", pipeline], capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr  # pipefail: generate's own exit code
    assert len(done.stdout) == 100
    assert done.stderr == b""


def test_cli_interactive_seed_and_choosing_tokens(cli, tiny_lm: Path) -> None:
    args = ["generate", "-m", str(tiny_lm), "--interactive", "-n", "8", "--greedy", "--seed", "To"]
    result = cli(args, input=":top 3\n:pick 2\n:pick 1\n:pick 9999\n\n:top\n")
    assert result.exit_code == 0, result.stderr
    checkpoint = load_checkpoint(tiny_lm, task="lm")
    session = Session(checkpoint.model, checkpoint.tokenizer, GenerateConfig(length=8, greedy=True), None)

    def listing(k: int) -> str:
        return "".join(
            f"{r:>3} {p:7.2%}  {text!r}\n" for r, (_, p, text) in enumerate(session.top_tokens(k), 1)
        )

    session.feed("To")
    expected = "To" + "".join(piece for _, piece in session.sample()) + "\n"
    expected += listing(3)
    expected += session.choose(session.top_tokens(3)[1][0]) + "\n" + listing(3)
    expected += session.choose(session.top_tokens(3)[0][0]) + "\n" + listing(3)
    expected += "".join(piece for _, piece in session.sample()) + "\n"  # the empty line
    expected += listing(10)
    assert result.stdout == expected
    assert result.stderr == "lstmtext: warning: there is no candidate 9999\n"


def test_cli_interactive_makes_one_text_at_a_time(cli, tiny_lm: Path) -> None:
    result = cli(["generate", "-m", str(tiny_lm), "--interactive", "--num-samples", "2"], input="To be\n")
    assert result.exit_code == 2
    assert result.stderr.startswith("lstmtext: error:") and result.stdout == ""


def test_cli_unknown_words_in_the_seed_warn_once(cli, tiny_word_lm: Path) -> None:
    result = cli(["generate", "-m", str(tiny_word_lm), "-s", "to be zebra", "-n", "5", "--random-state", "1"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("to be zebra")
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "'zebra'" in lines[0] and "<unk>" in lines[0]


# ---- the README


def readme_section() -> str:
    return (Path(__file__).resolve().parents[1] / "docs" / "generation.md").read_text(encoding="utf-8")


def test_readme_commands_use_options_generate_has() -> None:
    import inspect

    from lstmtext.cli.generate import generate as generate_command

    options = {"--" + name.replace("_", "-") for name in inspect.signature(generate_command).parameters}
    options |= {"--json"}
    commands = re.findall(r"lstmtext generate[^\n]*", readme_section())
    assert commands
    for command in commands:
        for option in re.findall(r"(--[a-z-]+)", command):
            assert option in options, option


def test_readme_python_example_runs(
    tiny_lm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    build(tiny_lm, tmp_path / pretrained.ENGLISH)
    monkeypatch.setattr(pretrained, "PRETRAINED", tmp_path)
    [block] = re.findall(r"```python\n(.*?)```", readme_section(), flags=re.DOTALL)
    exec(compile(block, "README.md", "exec"), {})
    assert len(capsys.readouterr().out) > 50
