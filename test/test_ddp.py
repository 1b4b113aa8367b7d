"""DDP on CPU (gloo): 2 processes with batch b follow the same loss trajectory as 1 process with batch 2b,
also across a stop and resume of the 2-process run."""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from _train_fixtures import make_loader, make_model, optim_cfg, train_cfg
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
