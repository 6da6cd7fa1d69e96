"""Converted zoo networks: still the official network at every ω, the right layers tunable, and trainable."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn
from zoo_testdata import FIXTURE_PREFIX, fixture_io, fixture_params

import tunify
from tunify import zoo

if not hasattr(tunify, "convert"):
    pytest.skip("tunify.convert has not landed yet", allow_module_level=True)

ATOL = RTOL = 1e-4
P = 2


def _convertible(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _converted(tmodel: nn.Module) -> set[str]:
    return set(tmodel.conversion_report().names())


@pytest.mark.parametrize("bias_tables", [False, True], ids=["default", "bias_tables"])
@pytest.mark.parametrize("path", fixture_params())
def test_converted_fixture_reproduces_output_for_any_omega(path: Path, bias_tables: bool) -> None:
    model = zoo.load(path, prefix=FIXTURE_PREFIX)
    arch = zoo.describe(model)["architecture"]
    options = {"relative_position_bias": True} if bias_tables else {}
    if bias_tables and arch != "SwinIR":  # the option is SwinIR's: elsewhere it is refused by name
        with pytest.raises(ValueError, match="unknown tunable-target option"):
            zoo.default_tunable_targets(model, **options)
        return
    layers = _convertible(model)
    names = [n for n, _ in model.named_parameters()]
    spec = zoo.describe(model)
    tmodel = tunify.convert(model, p=P, **zoo.default_tunable_targets(model, **options))
    assert zoo.describe(tmodel) == spec  # the Hub rebuilds the base network from this
    x, expected = fixture_io(path)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(2):  # shared ω, then a different ω for every sample of a doubled batch
            torch.testing.assert_close(
                tmodel(x, omega=torch.rand(P, generator=g)), expected, atol=ATOL, rtol=RTOL
            )
        omega = torch.rand(2 * x.shape[0], P, generator=g)
        y = tmodel(torch.cat([x, x]), omega=omega)
        torch.testing.assert_close(y, torch.cat([expected, expected]), atol=ATOL, rtol=RTOL)

    converted = _converted(tmodel)
    assert set(layers) <= converted  # every conv (head, body, upsampler) and Linear (qkv, proj, fc1, fc2)
    tensors = {r.name for r in tmodel.conversion_report() if r.kind == "tensor"}
    if arch == "SwinIR":
        for suffix in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"):
            assert any(n.endswith(suffix) for n in converted), suffix
        tables = {n for n in names if n.endswith("relative_position_bias_table")}
        assert tensors == (tables if bias_tables else set())
    else:
        scales = {n for n in names if n.endswith((".beta", ".gamma"))}
        assert scales and tensors == scales
        assert any(n.endswith("sca.1") for n in converted) and any(n.startswith("downs.") for n in converted)
        assert any(n.startswith("ups.") for n in converted)
    assert not any("norm" in n for n in converted)  # norm layers stay as they are


def test_default_tunable_targets_is_data() -> None:
    assert zoo.default_tunable_targets("NAFNet") == {"parameters": ["beta", "gamma"]}
    assert zoo.default_tunable_targets("SwinIR") == {}
    assert zoo.default_tunable_targets(
        {"architecture": "SwinIR", "kwargs": {}}, relative_position_bias=True
    ) == {"parameters": ["relative_position_bias_table"]}
    assert zoo.default_tunable_targets("timm:test_resnet") == {}
    with pytest.raises(ValueError, match="relative_position_bias"):
        zoo.default_tunable_targets("NAFNet", relative_position_bias=True)
    zoo.TUNABLE_TARGETS["NAFNet"]["convert"]["parameters"]
    assert zoo.TUNABLE_TARGETS["NAFNet"]["convert"] == {"parameters": ["beta", "gamma"]}  # not mutated


# --- training: per-sample ω, sizes that are not a multiple of the window / padder size ---------------------
def _tiny(name: str) -> nn.Module:
    if name.startswith("swinir"):
        return zoo.create(
            name, depths=[1, 1], embed_dim=12, num_heads=[2, 2], img_size=16, drop_path_rate=0.0
        )
    return zoo.create(name, width=8, enc_blk_nums=[1, 1], middle_blk_num=1, dec_blk_nums=[1, 1])


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("swinir_lightweight_x2", {}),
        ("swinir_color_dn", {"relative_position_bias": True}),
        ("nafnet_sidd_w32", {}),
    ],
)
def test_converted_network_trains_with_per_sample_omega(name: str, options: dict) -> None:
    torch.manual_seed(0)
    model = _tiny(name)
    scale = zoo.describe(model)["kwargs"].get("upscale", 1)
    tmodel = tunify.convert(model, p=P, **zoo.default_tunable_targets(model, **options))
    h, w = 13, 19  # not multiples of SwinIR's window (8) nor of this NAFNet's padder size (4)
    clean = torch.rand(2, 3, h * scale, w * scale)
    lr_in = nn.functional.avg_pool2d(clean, scale) if scale > 1 else clean + 0.1 * torch.randn_like(clean)
    omega = torch.rand(2, P)
    # target depends on ω per sample: ω_0 picks how much of the input's residual to keep
    target = clean + 0.05 * omega[:, :1, None, None]

    def loss_eval() -> float:
        tmodel.eval()
        with torch.no_grad():
            y = tmodel(lr_in, omega=omega)
        assert y.shape == target.shape
        return (y - target).abs().mean().item()

    before = loss_eval()
    tmodel.train()
    opt = torch.optim.Adam([p for p in tmodel.parameters() if p.requires_grad], lr=2e-3)
    for _ in range(4):
        opt.zero_grad()
        loss = (tmodel(lr_in, omega=torch.rand(2, P)) - target).abs().mean()
        loss.backward()
        opt.step()
    assert loss_eval() < before
