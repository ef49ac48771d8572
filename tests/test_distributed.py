"""Data-parallel training on gloo over loopback: two ranks equal one process, and a killed run resumes.

The multi-process tests start real processes (marked `ddp`; they run in the default suite).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from lstmtext import distributed
from lstmtext.config import ModelConfig, RunConfig, TokenizerConfig, TrainConfig
from lstmtext.data.corpus import TokenStream
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.distributed import Distributed, from_environment, row_block
from lstmtext.errors import ConfigError
from lstmtext.lm.task import language_model_trainer, shard_stream

from .conftest import TINY_TEXT

ROOT = Path(__file__).resolve().parents[1]

# ----- the pieces, in one process ----------------------------------------------------------------


def test_environment_is_read_as_torchrun_writes_it() -> None:
    env = {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "TORCHELASTIC_RESTART_COUNT": "2"}
    context = from_environment(env)
    assert context == Distributed(rank=1, world_size=4, local_rank=1, restart_count=2)
    assert context.enabled and not context.is_main
    alone = from_environment({})
    assert alone == Distributed() and alone.is_main and not alone.enabled
    with pytest.raises(ConfigError):
        from_environment({"RANK": "x"})
    with pytest.raises(ConfigError):
        from_environment({"RANK": "2", "WORLD_SIZE": "2"})


def test_shards_are_disjoint_and_cover_everything() -> None:
    for rows in range(0, 9):
        for world in (1, 2, 3, 4):
            blocks = [row_block(rows, rank, world) for rank in range(world)]
            assert [i for block in blocks for i in block] == list(range(rows))
            assert max(map(len, blocks)) - min(map(len, blocks)) <= 1
    assert distributed.local_batch_size(8, 2) == 4
    with pytest.raises(ConfigError, match="multiple of the 3 processes"):
        distributed.local_batch_size(8, 3)


def test_rank_streams_together_are_the_single_process_stream() -> None:
    ids = np.arange(1000, dtype=np.int64)
    whole = TokenStream(ids, 6, 7)
    for world in (2, 3):
        streams = [shard_stream(ids, 6, 7, rank, world) for rank in range(world)]
        assert all(s is not None and len(s) == len(whole) for s in streams)
        for index in (0, 5, len(whole) - 1):
            x = torch.cat([s.batch(index)[0] for s in streams if s is not None])
            y = torch.cat([s.batch(index)[1] for s in streams if s is not None])
            assert torch.equal(x, whole.batch(index)[0]) and torch.equal(y, whole.batch(index)[1])
    # One validation row, two ranks: one rank has it, the other none (and adds zeros to the sums).
    lone = [shard_stream(ids, 1, 7, rank, 2) for rank in range(2)]
    assert sum(s is None for s in lone) == 1


def test_nproc_launches_torchrun_with_the_same_arguments(cli, tiny_corpus: Path, tmp_path: Path, monkeypatch):
    from lstmtext.cli import relaunch

    launched: list[list[str]] = []

    class FakeChild:
        def __init__(self, command: list[str]) -> None:
            launched.append(command)

        def wait(self) -> int:
            return 0

        def send_signal(self, signum: int) -> None:
            pass

    monkeypatch.setattr(relaunch.subprocess, "Popen", FakeChild)
    for name in ("RANK", "WORLD_SIZE", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "run"
    result = cli(
        ["train", str(tiny_corpus), "--nproc", "2", "--out", str(out), "--hidden", "16",
         "--lowercase", "--val", "a.txt", "--val", "b.txt", "--max-restarts", "3"]
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    command = launched[0]
    assert command[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc-per-node=2" in command and "--max-restarts=3" in command
    args = command[command.index("lstmtext") + 1 :]
    assert args[0] == "train" and args[-2:] == ["--", str(tiny_corpus)]
    assert args[args.index("--out") + 1] == str(out) and args[args.index("--hidden") + 1] == "16"
    assert "--lowercase" in args and args.count("--val") == 2
    assert "--nproc" not in args and "--max-restarts" not in args


def test_classifier_training_refuses_several_processes(cli, tiny_corpus: Path, tmp_path: Path, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    args = ["train", str(tiny_corpus), "--task", "classify", "--out", str(tmp_path / "run")]
    result = cli([*args, "--nproc", "2"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("lstmtext: error: --task classify trains in one process")
    monkeypatch.setenv("RANK", "1")  # under torchrun, without --nproc
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = cli(args)
    assert result.exit_code == 2 and "--task classify" in result.stderr
    assert not (tmp_path / "run").exists()


# ----- two ranks against one process -------------------------------------------------------------

SHAPE = ModelConfig(vocab_size=1, embedding_dim=8, hidden_size=16, num_layers=2, dropout=0.0)
CONFIG = TrainConfig(
    seq_len=16,
    batch_size=4,
    lr=1e-2,
    eval_every=5,
    max_steps=10,
    patience=None,
    random_state=5,
    threads=1,
    keep_last=4,
    # AR and TAR on: the penalised forward must reach DDP's reducer too (the torchrun tests
    # train without them). Dropout is off, so the penalty is the same in both layouts.
    activation_penalty=2.0,
    temporal_penalty=1.0,
)


def _problem() -> tuple[RunConfig, TextTokenizer, np.ndarray, np.ndarray]:
    tokenizer = TextTokenizer.train([TINY_TEXT], TokenizerConfig("char"))
    ids = tokenizer.encode_array(TINY_TEXT)
    model = replace(SHAPE, vocab_size=tokenizer.vocab_size)
    # 900 training tokens: 4 rows of 225, 14 batches a epoch, so 20 steps wrap around once.
    # 51 validation tokens: 3 rows, split 1 + 2 between the ranks.
    return RunConfig(TokenizerConfig("char"), model, CONFIG), tokenizer, ids[:900], ids[900:951]


def _worker(out: str, rank: int, world: int) -> None:
    """One rank of the two-process run (started by the test below through `python -c`)."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    context = from_environment()
    assert (context.rank, context.world_size) == (rank, world)
    # Rendezvous through a file, not a port: nothing to collide with. process_group() then uses
    # this group as it is (the torchrun test below goes through its own env:// rendezvous).
    store = dist.FileStore(f"{out}/rendezvous", world)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world)
    run_config, tokenizer, train_ids, val_ids = _problem()
    with distributed.process_group(context, torch.device("cpu")):
        trainer = language_model_trainer(
            run_config, tokenizer, train_ids, val_ids, Path(out), distributed=context
        )
        trainer.fit()
    dist.destroy_process_group()
    save_file(
        {k: v.contiguous() for k, v in trainer.model.state_dict().items()}, f"{out}/rank{rank}.safetensors"
    )


def _environment(**extra: str) -> dict[str, str]:
    env = os.environ | extra | {"OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    if Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"  # loopback only, whatever the host name resolves to
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RUN_ID", "MASTER_ADDR", "MASTER_PORT"):
        if name not in extra:
            env.pop(name, None)
    return env


def _run_ranks(out: Path, world: int, timeout: float = 90) -> None:
    out.mkdir(parents=True)
    processes = []
    for rank in range(world):
        env = _environment(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
        code = f"from tests.test_distributed import _worker; _worker({str(out)!r}, {rank}, {world})"
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", code], env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True
            )
        )
    deadline = time.monotonic() + timeout
    try:
        for process in processes:
            # A rank that fails leaves its peer waiting in a collective: the deadline ends both.
            _, stderr = process.communicate(timeout=max(deadline - time.monotonic(), 1))
            assert process.returncode == 0, stderr
    finally:
        for process in processes:
            process.kill()
            process.wait()


def _evals(run: Path) -> list[tuple[int, float]]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["val_loss"]) for r in records if r["kind"] == "eval"]


@pytest.mark.ddp
def test_two_ranks_train_like_one_process_and_resume_on_one(tmp_path: Path) -> None:
    _run_ranks(tmp_path / "ddp", world=2)

    # Both ranks hold the very same parameters: DDP gave them the same averaged gradients.
    rank0, rank1 = (load_file(tmp_path / "ddp" / f"rank{r}.safetensors") for r in (0, 1))
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name

    # One process, the same global batch of 4 rows, 20 steps: its step-10 checkpoint is what
    # the two ranks reached, and so are its validation losses (reduced across the ranks).
    torch.set_num_threads(1)
    run_config, tokenizer, train_ids, val_ids = _problem()
    twenty = replace(run_config, train=replace(CONFIG, max_steps=20))
    single = language_model_trainer(twenty, tokenizer, train_ids, val_ids, tmp_path / "single")
    single.fit()
    at_10 = load_file(tmp_path / "single" / "checkpoints" / "step-00000010" / "model.safetensors")
    for name in at_10:
        torch.testing.assert_close(rank0[name], at_10[name], rtol=1e-4, atol=1e-5)
    evals_ddp, evals_single = _evals(tmp_path / "ddp"), _evals(tmp_path / "single")
    assert [step for step, _ in evals_ddp] == [5, 10]
    for (step, loss), (step_single, loss_single) in zip(evals_ddp, evals_single[:2], strict=True):
        assert step == step_single and loss == pytest.approx(loss_single, rel=1e-5)

    # Rank 0 wrote a checkpoint like a single process's, with the carried state of all 4 rows;
    # one process resumes it and lands where the single process did after 20 steps.
    carry = load_file(tmp_path / "ddp" / "checkpoints" / "last" / "optimizer.safetensors")
    assert carry["carry.hidden"].shape == (2, 4, 16)
    resumed = language_model_trainer(twenty, tokenizer, train_ids, val_ids, tmp_path / "ddp")
    assert resumed.fit(resume=True).steps == 20
    at_20 = load_file(tmp_path / "single" / "checkpoints" / "last" / "model.safetensors")
    after = load_file(tmp_path / "ddp" / "checkpoints" / "last" / "model.safetensors")
    for name in at_20:
        torch.testing.assert_close(after[name], at_20[name], rtol=1e-4, atol=1e-5)


# ----- fault tolerance through the CLI and torchrun -----------------------------------------------


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _rank_of(pid: int) -> int | None:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    values = dict(item.split(b"=", 1) for item in environ if b"=" in item)
    return int(values[b"RANK"]) if b"RANK" in values else None


@pytest.mark.ddp
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker processes through /proc")
def test_killed_worker_restarts_and_resumes_from_the_last_checkpoint(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "lstmtext", "train", str(tiny_corpus), "--out", str(out),
        "--nproc", "2", "--max-restarts", "1",
        "--layers", "1", "--hidden", "16", "--embed", "8", "--seq-len", "8", "--batch-size", "4",
        "--dropout", "0", "--eval-every", "20", "--max-steps", "200", "--threads", "1",
    ]  # fmt: skip
    launcher = subprocess.Popen(
        command, env=_environment(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        state = out / "checkpoints" / "last" / "trainer_state.json"
        deadline = time.monotonic() + 60
        while not state.exists() and launcher.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert state.exists(), "no checkpoint was written"
        workers = {_rank_of(pid): pid for pid in _descendants(launcher.pid)}
        assert 0 in workers, "the run ended before a worker could be killed"
        # Rank 0 holds the lock and writes the checkpoints: the harshest one to lose.
        os.kill(workers[0], signal.SIGKILL)
        stdout, stderr = launcher.communicate(timeout=90)
    finally:
        # torchrun starts each worker in a session of its own: end every one of them by pid.
        for pid in [*_descendants(launcher.pid), launcher.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        launcher.wait()
    assert launcher.returncode == 0, stderr
    assert "restart 1: resuming from" in stderr
    assert json.loads(state.read_text())["step"] == 200
    # The restarted run did not start over: it reported no evaluation before the checkpoint's.
    restarted = stderr.split("restart 1: resuming from", 1)[1]
    assert "step 20/200 " not in restarted and "step 200/200 " in restarted, stderr
    steps = [step for step, _ in _evals(out)]
    assert steps == list(range(20, 201, 20))  # each evaluation recorded once, none lost
