"""Launched the way users launch: 2 DDP processes (gloo, CPU) of b clips give the weights of 1
process of 2b clips (also with the adversarial identity-head steps, which bypass DDP), evaluation
counts every video exactly once, and torch.distributed.launch (which passes --local-rank) runs
end to end."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

import main as launcher

PROJECT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 300
TINY = ["DATA.NUM_FRAMES", "4", "DATA.INPUT_SIZE", "16", "DATA.FD_STRIDE", "2", "DATA.NUM_WORKERS", "0",
        "DATA.NUM_CLASSES", "3", "MODEL.PRIVACY_CLASSES", "[3]", "DATA.SYNTHETIC.ENABLED", "False",
        "MODEL.CUSTOM.LAYERS", "1", "MODEL.CUSTOM.TEXT_LAYERS", "1", "MODEL.CUSTOM.PATCH_SIZE", "8",
        "TEST.BATCH_SIZE", "2", "TEST.NUM_CLIP", "2", "TRAIN.EPOCHS", "2", "TRAIN.WARMUP_EPOCHS", "1",
        "TRAIN.CLIP_GRAD", "1.0", "AUG.MIXUP", "0.0", "AUG.CUTMIX", "0.0", "MODEL.DROP_PATH_RATE", "0.0",
        # Adam turns float noise in gradients that are zero in exact arithmetic (attention key
        # biases) into full-size steps; a larger epsilon keeps such noise from being amplified
        "TRAIN.EPS", "1.0e-4"]


def _frames_root(tmp_path, make):
    root = tmp_path / "frames"
    for i, name in enumerate(make.tiny_names()):  # 9 train, 9 val videos (odd)
        make.write_frame_folder(root / name, make.moving_frames(i))
    return root


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(PROJECT))
    return env


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=PROJECT, env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _torchrun() -> list[str]:
    script = Path(sys.executable).parent / "torchrun"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "torch.distributed.run"]


def test_two_ddp_processes_equal_one_process_of_twice_the_batch(tmp_path, make):
    root = _frames_root(tmp_path, make)
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    assert launcher.main(["--output", str(single), "--batch-size", "4", "--opts", "DATA.ROOT", str(root), *TINY]) == 0
    _run(_torchrun() + ["--nproc_per_node=2", "--master_port", str(_free_port()), "main.py",
                        "--output", str(ddp), "--batch-size", "2", "--opts", "DATA.ROOT", str(root), *TINY])
    one = torch.load(single / "last.pth", weights_only=True)
    two = torch.load(ddp / "last.pth", weights_only=True)
    assert one["global_step"] == two["global_step"] == 4 and two["world_size"] == 2
    for name, value in one["model"].items():
        torch.testing.assert_close(two["model"][name], value, rtol=1e-4, atol=1e-5, msg=name)
    metrics = json.loads((ddp / "metrics.json").read_text())
    assert metrics["num_videos"] == 9 and metrics["num_views"] == 2  # each video exactly once on 2 ranks
    assert (ddp / "log_rank1.txt").is_file() and not (ddp / "tmp").exists()


def test_torch_distributed_launch_passes_local_rank(tmp_path, make):
    root = _frames_root(tmp_path, make)
    out = tmp_path / "launch"
    result = _run([sys.executable, "-m", "torch.distributed.launch", "--nproc_per_node=2",
                   f"--master_port={_free_port()}", "main.py", "--distributed", "True",
                   "--accumulation-steps", "2", "--output", str(out), "--batch-size", "2",
                   "--opts", "DATA.ROOT", str(root), *TINY, "TRAIN.EPOCHS", "1"])
    assert "action top-1" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_videos"] == 9 and metrics["epoch"] == 1


def test_adversarial_head_steps_keep_ranks_identical_and_equal_one_process(tmp_path):
    from ddp_head_worker import train

    _run(_torchrun() + ["--nproc_per_node=2", "--master_port", str(_free_port()),
                        str(PROJECT / "tests" / "ddp_head_worker.py"), str(tmp_path)])
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    single = train(rank=0, world_size=1, wrap=False).state_dict()
    for name, value in single.items():
        assert torch.equal(ranks[0][name], ranks[1][name]), name  # the heads too: their gradients are averaged
        torch.testing.assert_close(ranks[0][name], value, rtol=1e-5, atol=1e-6, msg=name)


def test_two_nodes_of_one_process_equal_one_process_of_twice_the_batch(tmp_path, make):
    """Multi-node torchrun on one machine: 2 nodes x 1 process over a c10d rendezvous on localhost."""
    root = _frames_root(tmp_path, make)
    single, nodes = tmp_path / "single", tmp_path / "nodes"
    assert launcher.main(["--output", str(single), "--batch-size", "4", "--opts", "DATA.ROOT", str(root), *TINY,
                          "TRAIN.EPOCHS", "1"]) == 0
    endpoint = f"127.0.0.1:{_free_port()}"
    cmd = _torchrun() + ["--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}",
                         "--rdzv_id=lps_har_test"]
    args = ["main.py", "--output", str(nodes), "--batch-size", "2", "--opts", "DATA.ROOT", str(root), *TINY,
            "TRAIN.EPOCHS", "1"]
    workers = [subprocess.Popen(cmd + [f"--node_rank={rank}"] + args, cwd=PROJECT, env=_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for rank in (0, 1)]
    outputs = [worker.communicate(timeout=TIMEOUT_S)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    one = torch.load(single / "last.pth", weights_only=True)
    two = torch.load(nodes / "last.pth", weights_only=True)
    assert one["global_step"] == two["global_step"] == 2 and two["world_size"] == 2
    for name, value in one["model"].items():
        torch.testing.assert_close(two["model"][name], value, rtol=1e-4, atol=1e-5, msg=name)


def test_srun_ranks_and_master_from_the_slurm_environment(monkeypatch):
    from trainers import distributed

    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SLURM_PROCID", "5")
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_JOB_NODELIST", "gpu[03-05,9],cpu1")
    assert distributed.world_info_from_env() == (5, 8, 1)
    calls = []
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda *a, **k: calls.append((a, k)))
    monkeypatch.setattr(distributed.dist, "get_backend", lambda: "gloo")
    info = distributed.init_distributed(use_cuda=False)
    assert (info.rank, info.world_size, info.local_rank, info.distributed) == (5, 8, 1, True)
    assert os.environ["MASTER_ADDR"] == "gpu03" and os.environ["MASTER_PORT"] == str(distributed.DEFAULT_MASTER_PORT)
    assert calls == [(("gloo",), {"rank": 5, "world_size": 8})]
    for nodelist, host in (("node1", "node1"), ("a1,b2", "a1"), ("n[007]", "n007"), ("x-y[10-12]", "x-y10")):
        assert distributed.first_slurm_host(nodelist) == host


def test_ddp_wrap_uses_static_graph_only_without_accumulation_or_compile(recwarn):
    """torch 2.14's reducer asserts when the first backward of a static graph runs under no_sync()
    (accumulation), measured with 2 gloo ranks; _wrap keeps static_graph to plain runs."""
    import torch.distributed as dist

    from fakes import FakeModel, make_trainer
    from trainers.distributed import DistInfo
    from trainers.run import _wrap
    from utils.config import load_config

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        for accumulation, expected in ((1, True), (2, False)):
            trainer = make_trainer(FakeModel(), accumulation=accumulation, steps=1)
            cfg = load_config(opts=["TRAIN.ACCUMULATION_STEPS", str(accumulation)])
            _wrap(trainer, cfg, DistInfo(distributed=True))
            assert trainer.model.static_graph is expected and trainer.model.gradient_as_bucket_view
    finally:
        dist.destroy_process_group()
    assert not [w for w in recwarn if "broadcast_buffers" in str(w.message)]  # no warning on every rank
