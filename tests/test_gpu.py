"""What only a GPU can check: the layers, the trainer, the sweep, export and a recipe on CUDA.

CI has no GPU, so these skip there; a session lent one runs them in one call:
``python -m pytest -q tests/test_gpu.py``. ``TUNIFY_TEST_DEVICE`` names another device to run them on
(``cpu`` exercises the same code where there is none).
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import tunify
from tests.conftest import spread_copies
from tests.train.train_toys import DictDataset, make_model, multi_loss, uniform_sampler
from tunify.evaluate import sweep
from tunify.train import TrainConfig, Trainer

DEVICE = torch.device(os.environ.get("TUNIFY_TEST_DEVICE", "cuda"))

pytestmark = pytest.mark.skipif(
    DEVICE.type == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA device (CI has none)"
)


class Mixed(nn.Module):
    """Every layer kind a converted network holds: convolutions (plain, depthwise, 1×1, transposed),
    attention and a Linear over tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pointwise = nn.Conv2d(8, 16, 1)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.linear = nn.Linear(16, 16)
        self.up = nn.ConvTranspose2d(16, 3, 2, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        y = self.pointwise(F.relu(self.depthwise(F.relu(self.conv(x)))))
        b, c, h, w = y.shape
        t = y.flatten(2).transpose(1, 2)
        t = self.linear(t + self.attn(t, t, t, need_weights=False)[0])
        return self.up(t.transpose(1, 2).reshape(b, c, h, w))


@pytest.fixture
def exact_float32() -> Iterator[None]:
    """No TF32: the device's products in float32, comparable with the CPU's."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


@pytest.mark.parametrize("form", ["shared", "per_sample", "map"])
def test_layers_agree_with_the_cpu(form: str, exact_float32: None) -> None:
    torch.manual_seed(0)
    cpu = spread_copies(tunify.convert(Mixed(), 2)).eval()
    gpu = copy.deepcopy(cpu).to(DEVICE)
    x = torch.rand(3, 3, 8, 8)
    omega = {
        "shared": torch.tensor([0.3, 0.7]),
        "per_sample": torch.rand(3, 2),
        "map": torch.rand(3, 2, 8, 8),
    }[form]
    expected = cpu(x, omega=omega)
    expected.square().mean().backward()
    got = gpu(x.to(DEVICE), omega=omega.to(DEVICE))
    got.square().mean().backward()
    torch.testing.assert_close(got.cpu(), expected, atol=1e-5, rtol=1e-4)
    for (name, a), b in zip(cpu.named_parameters(), gpu.parameters(), strict=True):
        torch.testing.assert_close(b.grad.cpu(), a.grad, atol=1e-5, rtol=1e-4, msg=name)
    x, omega = x.to(DEVICE), omega.to(DEVICE)
    with torch.no_grad():  # inference: mixed once, then taken from the cache (the second call's epoch)
        for _ in range(2):
            torch.testing.assert_close(gpu(x, omega=omega).cpu(), expected, atol=1e-5, rtol=1e-4)


def test_training_at_the_default_precision_then_sweep_and_export(tmp_path: Path, exact_float32: None) -> None:
    """precision="auto" (fp16 with a GradScaler on CUDA) trains every copy; the trained network, left on the
    device by the trainer, is swept and exported there without being moved."""
    model = make_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = TrainConfig(
        total_steps=4, batch_size=4, lr=1e-2, device=str(DEVICE), checkpoint_every=4, progress=False
    )
    Trainer(model, multi_loss, uniform_sampler, DictDataset(), config, tmp_path / "run").fit()
    after = model.state_dict()
    assert all(v.device.type == DEVICE.type for v in after.values())
    assert all(torch.isfinite(v).all() for v in after.values())
    copies = [k for k in after if k.rsplit(".", 1)[-1].isdigit()]
    assert copies and all(not torch.equal(after[k].cpu(), before[k]) for k in copies)

    data = [{"input": torch.rand(3, 16, 16), "clean": torch.rand(3, 16, 16)}]
    (row,) = sweep(model, data, omegas=[[0.5, 0.5]], progress=False)
    assert row["psnr"] > 0

    model.eval()
    path = tunify.export(model, tmp_path / "m.pt2")
    x, omega = torch.rand(2, 3, 16, 16, device=DEVICE), torch.tensor([0.2, 0.8], device=DEVICE)
    with torch.no_grad():
        torch.testing.assert_close(torch.export.load(path).module()(x, omega), model(x, omega=omega))


@pytest.mark.skipif(DEVICE.type != "cuda", reason="CUDA's synchronisation debug mode")
def test_a_training_step_waits_for_the_gpu_once(tmp_path: Path) -> None:
    """Per step only ω's range check reads the device (pinned batches and ω, the unsharp mask's kernel made
    on the device): a training step must not make the host wait for the GPU more than that."""
    from tunify.objectives import ParametricMultiLoss, UnsharpMask

    model = make_model()
    target = UnsharpMask(gamma=1.0, omega_index=1, noise_omega_index=0)
    loss = ParametricMultiLoss([target], weight_by=[None], num_params=2)
    config = TrainConfig(
        total_steps=5, batch_size=4, device=str(DEVICE), precision="fp32", checkpoint_every=5, progress=False
    )
    trainer = Trainer(model, loss, uniform_sampler, DictDataset(), config, tmp_path / "run")
    batches = iter(trainer.loader)
    for _ in range(2):  # warm-up: allocator, cuDNN
        trainer._train_step(next(batches))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                trainer._train_step(next(batches))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [str(w.message) for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) <= 3, syncs


def test_a_recipe_trains_sweeps_and_publishes(shared: Path, tmp_path: Path) -> None:
    from tunify.recipes import apply_overrides, apply_preset, load_config
    from tunify.recipes._config import config_path
    from tunify.recipes._run import run
    from tunify.recipes.denoise import RECIPE

    cfg = apply_overrides(
        apply_preset(load_config(config_path("denoise")), "smoke"),
        [
            "train.total_steps=3",
            "train.warmup_steps=1",
            f"train.device={DEVICE}",
            "data.patch_size=24",
            "eval.max_images=1",
            "eval.crop=40",
        ],
    )
    folder = run(RECIPE, cfg, tmp_path)
    assert (tmp_path / "sweep.json").is_file() and (folder / "model.safetensors").is_file()
    loaded = tunify.from_pretrained(folder)
    assert loaded.p == 2 and loaded.info["metrics"]
