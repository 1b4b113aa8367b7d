"""DDP on CPU (gloo): 2 processes with batch b follow the same loss trajectory as 1 process with batch 2b,
also across a stop and resume of the 2-process run; and the real launch path (utils/launch.sh -> torchrun ->
elfs2t.bin.train / decode): a 2-process training killed with SIGKILL and resumed ends with the weights of an
uninterrupted one, and decoding on 2 ranks gives the hypotheses of 1."""
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from _train_fixtures import make_loader, make_model, optim_cfg, train_cfg
from feature_fixtures import make_feature_cuts
from conftest import ROOT, process_alive, venv_env, write_conf
from elfs2t.train.checkpoint import load_checkpoint
from elfs2t.train.trainer import Trainer

STEPS = 9


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(exp, per_process_cuts, rank=0, world_size=1, max_steps=STEPS):
    loader = make_loader(n=48, max_cuts=per_process_cuts, shuffle=False, num_buckets=2, rank=rank,
                         world_size=world_size)
    trainer = Trainer(make_model(noise=0.0), optim_cfg(), train_cfg(max_steps=max_steps, save_every=100), exp,
                      loader)
    return trainer, trainer.fit(resume=True)


def _worker(rank, world_size, port, exp, result_path):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world_size))
    torch.set_num_threads(1)
    from elfs2t.train.distributed import cleanup, dist_info, init_distributed

    info = init_distributed()
    assert info.world_size == world_size and info.rank == rank and dist_info().world_size == world_size
    try:
        # Stop at step 4 (mid-epoch: 6 batches of 2 x 4 cuts per epoch), rebuild everything, resume to the end.
        _, first = _run(exp, 4, rank=rank, world_size=world_size, max_steps=4)
        trainer, out = _run(exp, 4, rank=rank, world_size=world_size)
        assert isinstance(trainer.model, torch.nn.parallel.DistributedDataParallel)
        assert out["resumed"] and not first["resumed"]
        if rank == 0:
            torch.save({"losses": first["losses"] + out["losses"], "params": trainer.module.state_dict()},
                       result_path)
    finally:
        cleanup()


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_double_batch(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "ddp"), str(tmp_path / "ddp.pt")), nprocs=2, join=True)
    ddp = torch.load(tmp_path / "ddp.pt")
    _, single = _run(tmp_path / "single", 8)
    assert len(ddp["losses"]) == STEPS
    torch.testing.assert_close(torch.tensor(ddp["losses"]), torch.tensor(single["losses"]), rtol=1e-5, atol=1e-6)
    ckpt = load_checkpoint(tmp_path / "ddp" / "last.pt")
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2 and ckpt["step"] == STEPS
    single_params = load_checkpoint(tmp_path / "single" / "last.pt")["model"]
    for key, value in single_params.items():
        torch.testing.assert_close(ddp["params"][key], value, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------------------------------
# The real path: utils/launch.sh -> torchrun -> python -m elfs2t.bin.train / decode, 2 CPU processes (gloo)
# --------------------------------------------------------------------------------------------------------
TORCHRUN_STEPS = 40


def _launch(nproc: int, module: str, *args: str, wait: bool = True) -> subprocess.Popen | subprocess.CompletedProcess:
    env = venv_env(OMP_NUM_THREADS="1")
    cmd = [str(ROOT / "utils" / "launch.sh"), "--nproc", str(nproc), "--python", sys.executable, module, *args]
    if wait:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


@pytest.fixture(scope="module")
def torchrun_setup(module_tmp):
    tmp = module_tmp
    words = ["the", "cat", "sat", "a", "dog", "ran", "far", "bird", "flew", "away"]
    texts = [" ".join(words[(i + j) % len(words)] for j in range(2 + i % 3)) for i in range(24)]
    make_feature_cuts(tmp / "feats", texts)
    conf = write_conf(tmp, tmp / "feats" / "cuts.jsonl.gz")
    overrides = [f"train.max_steps={TORCHRUN_STEPS}", "train.save_every=4", "train.valid_every=0", "train.log_every=4",
                 "train.keep_last=2", "train.find_unused_parameters=true"]
    return tmp, conf, overrides


def _processes_naming(path: Path) -> list[int]:
    """The live processes whose command line holds ``path`` (Linux /proc)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if str(path) in (proc / "cmdline").read_text().replace("\0", " ") and process_alive(int(proc.name)):
                found.append(int(proc.name))
        except OSError:
            pass
    return found


def _weights(exp: Path) -> dict:
    state = load_checkpoint(exp / "last.pt")
    return {"model": state["model"], "ema": state["ema"]["shadow"], "step": state["step"],
            "world_size": state["world_size"]}


@pytest.mark.slow  # three torchrun launches of 2 processes (~1 min on 2 cores)
def test_torchrun_training_killed_and_resumed_ends_with_the_uninterrupted_weights(torchrun_setup):
    tmp, conf, overrides = torchrun_setup
    base = ["--conf", str(conf), "--num-valid-examples", "0", *overrides]
    r = _launch(2, "elfs2t.bin.train", "--exp-dir", str(tmp / "straight"), *base)
    assert r.returncode == 0, r.stderr[-3000:]

    killed = tmp / "killed"
    proc = _launch(2, "elfs2t.bin.train", "--exp-dir", str(killed), *base, wait=False)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None and not (killed / "checkpoint-4.pt").exists():
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}"
        workers = _processes_naming(killed)
        assert len(workers) >= 2, workers  # torchrun (and the launcher) and its two training processes
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and torchrun (its workers run in sessions of their own)
        proc.wait()
        deadline = time.time() + 30
        while time.time() < deadline and _processes_naming(killed):
            time.sleep(0.1)
        # orphaned workers would train on into the folder that the resumed run below writes
        assert not _processes_naming(killed), "a training process outlived its killed torchrun"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in _processes_naming(killed):
            with contextlib.suppress(ProcessLookupError):  # it may end between the listing and the kill
                os.kill(pid, signal.SIGKILL)
    assert not (killed / f"checkpoint-{TORCHRUN_STEPS}.pt").exists()  # it really was stopped early
    r = _launch(2, "elfs2t.bin.train", "--exp-dir", str(killed), *base)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from" in (killed / "train.log").read_text()

    a, b = _weights(tmp / "straight"), _weights(killed)
    assert a["step"] == b["step"] == TORCHRUN_STEPS and a["world_size"] == b["world_size"] == 2
    # Equal up to float rounding: on some CPUs the first step after a 2-process resume differs from the uninterrupted
    # run's in the last bits (measured: 3e-8 after one step, 1.2e-7 after 32; one process resumes bitwise, see
    # test_trainer); a skipped or repeated batch or another noise draw moves the weights by a learning-rate-sized step.
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        for key in a[part]:
            torch.testing.assert_close(b[part][key], a[part][key], rtol=1e-5, atol=1e-6, msg=f"{part}.{key}")


@pytest.mark.slow  # two launches (~30 s)
def test_decoding_on_two_ranks_gives_the_hypotheses_of_one(torchrun_setup):
    tmp, conf, overrides = torchrun_setup
    exp = tmp / "straight"
    if not (exp / "last.pt").exists():  # run alone: train it (one process is enough here)
        assert _launch(1, "elfs2t.bin.train", "--conf", str(conf), "--exp-dir", str(exp), *overrides).returncode == 0
    cuts = tmp / "feats" / "cuts.jsonl.gz"
    texts = {}
    for nproc in (1, 2):
        r = _launch(nproc, "elfs2t.bin.decode", "--exp-dir", str(exp), "--set", f"dev={cuts}", "--tag", f"n{nproc}",
                    "decode.flow.steps=2", "decode.max_duration=1.5")  # several batches, noise from each
        assert r.returncode == 0, r.stderr[-3000:]
        texts[nproc] = (exp / f"decode_n{nproc}" / "dev" / "text").read_text()
        timing = json.loads((exp / f"decode_n{nproc}" / "dev" / "timing.json").read_text())
        assert timing["world_size"] == nproc and timing["num_utts"] == 24
    assert texts[1] == texts[2] and len(texts[1].splitlines()) == 24
