"""Every architecture spandrel ships, built small, converted, and checked against the original network.

For each: the converted network at a shared ω reproduces the original output, per-sample ω on a batch of
two equals each sample run alone at its own ω (after the copies are made to differ), and ``tunify.bake``
at an ω computes what the tunable network computes there. A new spandrel architecture fails
``test_every_spandrel_architecture_is_listed`` until it gets a case here (or a reason in NOT_BUILDABLE).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import tunify
from tests.conftest import num_threads, spread_copies

spandrel_architectures = pytest.importorskip("spandrel.architectures")

P = 2


@dataclass(frozen=True)
class Case:
    """One architecture: how to build it small, and what to feed it."""

    module: str  # spandrel.architectures.<module>
    cls: str
    kwargs: dict[str, Any]
    size: int = 16  # input height and width
    channels: int = 3
    extra: Callable[[Tensor], tuple[Tensor | None, ...]] = field(default=lambda x: ())  # more inputs
    call_kwargs: dict[str, Any] = field(default_factory=dict)  # keyword arguments of every call
    build: Callable[[], nn.Module] | None = None  # instead of cls(**kwargs)
    setup: Callable[[pytest.MonkeyPatch], None] | None = None
    one_sample: str | None = None  # why the original network only runs batches of one
    xfail: str | None = None


def _mask(x: Tensor) -> tuple[Tensor, ...]:
    """LaMa's second input: the mask of the region to inpaint."""
    return ((x[:, :1] > 0.5).float(),)


def _style_noise(x: Tensor) -> tuple[Tensor | None, ...]:
    """AuraSR's ``styles`` (None: computed from the noise) and the noise its style network starts from."""
    g = torch.Generator().manual_seed(4)
    return (None, torch.randn(x.shape[0], 8, generator=g))


def _no_input_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    """AuraSR adds 0.001·randn_like(x) to its input on every call; zero it so that calls are comparable."""
    monkeypatch.setattr(torch, "randn_like", lambda t, **kw: torch.zeros_like(t, **kw))


def _small_lama() -> nn.Module:
    """LaMa's constructor takes no size (51M parameters): the same class around a narrow generator."""
    from spandrel.architectures.LaMa import LaMa
    from spandrel.architectures.LaMa.__arch.LaMa import FFCResNetGenerator

    net = LaMa.__new__(LaMa)
    nn.Module.__init__(net)
    net.model = FFCResNetGenerator(4, 3, ngf=8, n_downsampling=2, n_blocks=1)
    return net


CASES: dict[str, Case] = {
    "ATD": Case(
        "ATD",
        "ATD",
        dict(
            img_size=16,
            embed_dim=12,
            depths=(1,),
            num_heads=(2,),
            window_size=4,
            category_size=16,
            num_tokens=8,
            reducted_dim=2,
            convffn_kernel_size=3,
            upscale=2,
            upsampler="pixelshuffledirect",
        ),
    ),
    "AuraSR": Case(
        "AuraSR",
        "AuraSR",
        dict(
            dim=8,
            image_size=32,
            input_image_size=16,
            up_dim_mults=(1, 2),
            down_dim_mults=(2,),
            full_attn=(False, False),
            attn_depths=(1, 1),
            mid_attn_depth=1,
            self_attn_dim_head=4,
            self_attn_heads=2,
            num_conv_kernels=2,
            resnet_block_groups=4,
            flash_attn=False,
            style_network=dict(dim_in=8, dim_out=16, depth=1),
        ),
        extra=_style_noise,
        setup=_no_input_noise,
    ),
    "CRAFT": Case(
        "CRAFT",
        "CRAFT",
        dict(
            window_size=4,
            embed_dim=12,
            depths=[1],
            num_heads=[2],
            split_size_0=2,
            split_size_1=4,
            upscale=2,
        ),
    ),
    "Compact": Case("Compact", "Compact", dict(num_feat=8, num_conv=2, upscale=2)),
    "DAT": Case(
        "DAT",
        "DAT",
        dict(
            img_size=16,
            embed_dim=16,
            split_size=[2, 4],
            depth=[1],
            num_heads=[2],
            expansion_factor=2.0,
            drop_path_rate=0.0,
            upscale=2,
        ),
    ),
    "DCTLSA": Case("DCTLSA", "DCTLSA", dict(nf=10, num_modules=6, upscale=2, num_head=2)),
    "DITN": Case(
        "DITN",
        "DITN",
        dict(dim=12, ITL_blocks=1, SAL_blocks=1, UFONE_blocks=1, patch_size=4, upscale=2),
    ),
    "DRCT": Case(
        "DRCT",
        "DRCT",
        dict(
            img_size=16,
            embed_dim=12,
            depths=(1,),
            num_heads=(2,),
            window_size=4,
            drop_path_rate=0.0,
            upscale=2,
            upsampler="pixelshuffle",
            gc=8,
        ),
    ),
    "DRUNet": Case("DRUNet", "DRUNet", dict(in_nc=4, out_nc=3, nc=[8, 8, 8, 8], nb=1), channels=4),
    "DnCNN": Case("DnCNN", "DnCNN", dict(in_nc=3, out_nc=3, nc=8, nb=3)),
    "ESRGAN": Case("ESRGAN", "ESRGAN", dict(num_filters=8, num_blocks=1, scale=2)),
    "FBCNN": Case("FBCNN", "FBCNN", dict(nc=[8, 8, 8, 512], nb=1)),  # the QF predictor needs 512
    "FDAT": Case(
        "FDAT",
        "FDAT",
        dict(
            embed_dim=12,
            num_groups=1,
            depth_per_group=1,
            num_heads=2,
            window_size=4,
            aim_reduction_ratio=2,
            drop_path_rate=0.0,
            mid_dim=8,
            scale=2,
        ),
    ),
    "FFTformer": Case(
        "FFTformer",
        "FFTformer",
        dict(dim=8, num_blocks=[1, 1, 1], num_refinement_blocks=1, ffn_expansion_factor=1),
        size=32,
    ),
    "GFPGAN": Case(
        "GFPGAN",
        "GFPGAN",
        dict(out_size=32, num_style_feat=32, channel_multiplier=1, narrow=0.125, num_mlp=1),
        size=32,
        call_kwargs={"randomize_noise": False},  # the stored noise buffers, not fresh noise every call
    ),
    "GRL": Case(
        "GRL",
        "GRL",
        dict(
            img_size=16,
            embed_dim=12,
            depths=[1],
            num_heads_window=[1],
            num_heads_stripe=[1],
            window_size=4,
            stripe_size=[4, 4],
            mlp_ratio=2.0,
            drop_path_rate=0.0,
            upscale=2,
            upsampler="pixelshuffle",
        ),
    ),
    "HAT": Case(
        "HAT",
        "HAT",
        dict(
            img_size=16,
            embed_dim=12,
            depths=(1,),
            num_heads=(2,),
            window_size=4,
            compress_ratio=2,
            squeeze_factor=3,
            mlp_ratio=2.0,
            drop_path_rate=0.0,
            upscale=2,
            num_feat=8,
        ),
    ),
    "HVICIDNet": Case("HVICIDNet", "HVICIDNet", dict(channels=[8, 8, 8, 8], heads=[1, 1, 1, 1])),
    "IPT": Case(
        "IPT",
        "IPT",
        dict(patch_size=12, patch_dim=3, n_feats=8, num_heads=2, num_layers=1, scale=[1], rgb_range=1.0),
        size=12,
    ),
    "KBNet_l": Case(
        "KBNet",
        "KBNet_l",
        dict(dim=24, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 1, 1]),  # groups of 24
    ),
    "KBNet_s": Case("KBNet", "KBNet_s", dict(width=8, middle_blk_num=1, enc_blk_nums=[1], dec_blk_nums=[1])),
    "LaMa": Case("LaMa", "LaMa", {}, extra=_mask, build=_small_lama),
    "MMRealSR": Case(
        "MMRealSR",
        "MMRealSR",
        dict(
            num_in_ch=3,
            num_out_ch=3,
            scale=4,  # at scale 2 its degradation net expects the pixel-unshuffled channels
            num_feat=8,
            num_block=1,
            num_grow_ch=4,
            num_feats=[8, 8, 8, 8],
            num_blocks=[1, 1, 1, 1],
        ),
    ),
    "MixDehazeNet": Case(
        "MixDehazeNet", "MixDehazeNet", dict(embed_dims=[8, 8, 8, 8, 8], depths=[1] * 5), size=40
    ),
    "MoESR": Case("MoESR", "MoESR", dict(dim=8, n_blocks=1, n_block=1, upsample_dim=8, scale=2)),
    "MoSR": Case("MoSR", "MoSR", dict(n_block=1, dim=8, upscale=2)),
    "NAFNet": Case("NAFNet", "NAFNet", dict(width=8, middle_blk_num=1, enc_blk_nums=[1], dec_blk_nums=[1])),
    "OmniSR": Case("OmniSR", "OmniSR", dict(num_feat=8, window_size=4, up_scale=2)),
    "PLKSR": Case("PLKSR", "PLKSR", dict(dim=8, n_blocks=1, upscaling_factor=2, kernel_size=5)),
    "RealPLKSR": Case(
        "PLKSR", "RealPLKSR", dict(dim=8, n_blocks=1, upscaling_factor=2, kernel_size=5, norm_groups=2)
    ),
    "RCAN": Case("RCAN", "RCAN", dict(n_resgroups=1, n_resblocks=1, n_feats=8, reduction=2, scale=2)),
    "RGT": Case(
        "RGT",
        "RGT",
        dict(
            img_size=16,
            embed_dim=12,
            depth=[1],
            num_heads=[2],
            split_size=[4, 4],
            mlp_ratio=2.0,
            drop_path_rate=0.0,
            upscale=2,
        ),
    ),
    "RealCUGAN_2x": Case("RealCUGAN", "UpCunet2x", {}, size=20),  # fixed widths: only the input shrinks
    "RealCUGAN_2x_fast": Case("RealCUGAN", "UpCunet2x_fast", {}, size=40),  # reflect-pads by 38
    "RealCUGAN_3x": Case("RealCUGAN", "UpCunet3x", {}, size=16),
    "RealCUGAN_4x": Case("RealCUGAN", "UpCunet4x", {}, size=20),
    "RestoreFormer": Case(
        "RestoreFormer",
        "RestoreFormer",
        dict(
            n_embed=16,
            embed_dim=8,
            ch=32,  # GroupNorm(32)
            ch_mult=(1, 2),
            num_res_blocks=1,
            attn_resolutions=(8,),
            resolution=16,
            z_channels=8,
            head_size=2,
        ),
    ),
    "RetinexFormer": Case("RetinexFormer", "RetinexFormer", dict(n_feat=8, stage=1, num_blocks=[1, 1, 1])),
    "SAFMN": Case("SAFMN", "SAFMN", dict(dim=8, n_blocks=1, upscaling_factor=2)),
    "SAFMNBCIE": Case("SAFMNBCIE", "SAFMNBCIE", dict(dim=8, n_blocks=1, num_layers=1)),
    "SCUNet": Case(
        "SCUNet", "SCUNet", dict(config=[1] * 7, dim=64, input_resolution=16), size=40
    ),  # reflect-pads to 64
    "SPAN": Case("SPAN", "SPAN", dict(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2)),
    "SeemoRe": Case(
        "SeemoRe",
        "SeemoRe",
        dict(num_experts=2, num_layers=1, embedding_dim=16, scale=2, global_kernel_size=5, recursive=1),
        one_sample="in eval mode its mixture of experts runs the whole batch through the experts picked for "
        "the first sample (topk_experts.squeeze(0)), so a batch of two fails in the original network",
    ),
    "SwiftSRGAN": Case("SwiftSRGAN", "SwiftSRGAN", dict(num_channels=8, num_blocks=1, upscale_factor=2)),
    "Swin2SR": Case(
        "Swin2SR",
        "Swin2SR",
        dict(
            img_size=16,
            embed_dim=12,
            depths=[1],
            num_heads=[2],
            window_size=4,
            mlp_ratio=2.0,
            drop_path_rate=0.0,
            upscale=2,
            upsampler="pixelshuffle",
        ),
    ),
    "SwinIR": Case(
        "SwinIR",
        "SwinIR",
        dict(
            img_size=16,
            embed_dim=12,
            depths=[1],
            num_heads=[2],
            window_size=4,
            mlp_ratio=2.0,
            drop_path_rate=0.0,
            upscale=2,
            upsampler="pixelshuffle",
        ),
    ),
    "Uformer": Case(
        "Uformer",
        "Uformer",
        dict(img_size=32, embed_dim=8, depths=[1] * 9, num_heads=[1] * 9, win_size=4, drop_path_rate=0.0),
        size=32,
    ),
}

#: Architectures spandrel ships that cannot be built without their weights, with the reason. Empty with
#: spandrel 0.4.2 (all 42 build from keyword arguments); a new one that needs a checkpoint goes here.
NOT_BUILDABLE: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """These networks are tiny: with two intra-op threads each small op pays for synchronisation, and the
    file took 4x the CPU time it takes on one thread (143 s against 36 s)."""
    with num_threads(1):
        yield


def _shapes(net: nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in net.state_dict().items()}


def _build(case: Case) -> nn.Module:
    torch.manual_seed(0)
    if case.build is not None:
        net = case.build()
    else:
        net = getattr(importlib.import_module(f"spandrel.architectures.{case.module}"), case.cls)(
            **case.kwargs
        )
    net.eval()
    _perturb_constant_parameters(net)
    return net


@torch.no_grad()
def _perturb_constant_parameters(net: nn.Module) -> None:
    """Give zero/one-initialised tensors (biases, norm scales, residual scales) random values, so that
    a layer whose bias or scale were dropped or mixed wrongly changes the output."""
    g = torch.Generator().manual_seed(1)
    for param in net.parameters():
        if param.is_floating_point() and (param.numel() <= 1 or param.std() == 0):
            param.add_(0.1 * torch.randn(param.shape, generator=g))


def _inputs(case: Case, batch: int) -> tuple[Tensor | None, ...]:
    g = torch.Generator().manual_seed(2)
    x = torch.rand(batch, case.channels, case.size, case.size, generator=g)
    return (x, *case.extra(x))


def _rows(inputs: tuple[Tensor | None, ...], i: int) -> tuple[Tensor | None, ...]:
    return tuple(t[i : i + 1] if isinstance(t, Tensor) else t for t in inputs)


def _run(model: nn.Module, case: Case, inputs: tuple[Tensor | None, ...], **omega: Tensor) -> Tensor:
    """The image output of one call, on fresh copies of the inputs (RCAN scales its input in place)."""
    fresh = (t.clone() if isinstance(t, Tensor) else t for t in inputs)
    out = model(*fresh, **case.call_kwargs, **omega)
    return out[0] if isinstance(out, (tuple, list)) else out


def _close(actual: Tensor, expected: Tensor, what: str) -> None:
    scale = expected.abs().max().item()
    torch.testing.assert_close(
        actual, expected, rtol=1e-4, atol=1e-4 * max(scale, 1e-3), msg=lambda m: f"{what}: {m}"
    )


def test_every_spandrel_architecture_is_listed() -> None:
    shipped = {
        m.name for m in pkgutil.iter_modules(spandrel_architectures.__path__) if not m.name.startswith("_")
    }
    listed = {c.module for c in CASES.values()} | set(NOT_BUILDABLE)
    assert shipped == listed, f"not listed: {sorted(shipped - listed)}; gone: {sorted(listed - shipped)}"


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")  # small DAT, CRAFT, RGT rebuilt
@pytest.mark.parametrize("name", list(CASES))
def test_converted_architecture_matches_original(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    case = CASES[name]
    if case.xfail:
        pytest.xfail(case.xfail)
    if case.setup is not None:
        case.setup(monkeypatch)
    net = _build(case)
    batch = 1 if case.one_sample else 2
    x = _inputs(case, batch)
    with torch.no_grad():
        expected = _run(net, case, x)
        assert expected.std() > 0, "the original network's output is constant"
        tmodel = tunify.convert(net, P, **tunify.zoo.default_tunable_targets(net))
        g = torch.Generator().manual_seed(3)
        _close(_run(tmodel, case, x, omega=torch.rand(P, generator=g)), expected, "shared ω")

        spread_copies(tmodel)
        omega = torch.rand(batch, P, generator=g)
        batched = _run(tmodel, case, x, omega=omega)
        alone = [_run(tmodel, case, _rows(x, i), omega=omega[i]) for i in range(batch)]
        for i in range(batch):
            _close(batched[i : i + 1], alone[i], f"per-sample ω, sample {i}")
        assert not torch.allclose(alone[0], expected[:1]), "the output does not depend on the copies"

        plain = tunify.bake(tmodel, omega[0])
        _close(_run(plain, case, _rows(x, 0)), alone[0], "bake")

    if case.build is None:  # what save_pretrained records rebuilds the same network (from_pretrained)
        rebuilt = tunify.zoo.build(tunify.zoo.describe(tmodel))
        assert type(rebuilt) is type(plain)
        assert _shapes(rebuilt) == _shapes(plain), "describe → build gives another network"
