from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_toys import DictDataset, ddp_config, make_model, multi_loss, uniform_sampler

from tunify.train import Trainer, load_weights

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_match_a_single_process_also_after_a_kill(tmp_path):
    ddp_dir = tmp_path / "ddp"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
        "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(HERE / "ddp_worker.py"), str(ddp_dir),
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and its workers, which it started in this session
        output, _ = proc.communicate()
        pytest.fail(f"torchrun timed out:\n{output[-4000:]}")
    assert proc.returncode == 0, output[-6000:]

    single = Trainer(
        make_model(), multi_loss, uniform_sampler, DictDataset(), ddp_config(), tmp_path / "single"
    )
    single.fit()

    for run in ("straight", "resumed"):
        ddp_model = load_weights(ddp_dir / run / "model.safetensors")
        ddp_ema = load_weights(ddp_dir / run / "weights.safetensors")
        for key, value in single.model.state_dict().items():
            torch.testing.assert_close(ddp_model[key], value, atol=1e-5, rtol=0, msg=f"{run} {key}")
            torch.testing.assert_close(
                ddp_ema[key], single.ema.shadow[key], atol=1e-5, rtol=0, msg=f"{run} {key}"
            )
        records = [json.loads(line) for line in (ddp_dir / run / "log.jsonl").read_text().splitlines()]
        assert [r["step"] for r in records] == [1, 2, 3, 4, 5]  # rank 0 alone writes the log
        checkpoints = sorted(p.name for p in (ddp_dir / run / "checkpoints").iterdir())
        assert checkpoints == ["step_00000004", "step_00000005"]
