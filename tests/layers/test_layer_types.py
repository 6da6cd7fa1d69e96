"""Each tunable layer type against its torch original: equivalence, per-sample ω, materialize."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tests.conftest import spread_copies
from tunify.layers import TunableModule, factory_for, use_omega
from tunify.layers import base as layers_base
from tunify.layers import conv as conv_module

torch.set_default_dtype(torch.float32)


def run(layer: nn.Module, omega: torch.Tensor, *args, **kwargs):
    with use_omega(omega):
        return layer(*args, **kwargs)


def check_layer(base: nn.Module, x: torch.Tensor, p: int, atol: float = 1e-5) -> None:
    """Equivalence after conversion; per-sample = each sample alone; materialize = tunable at that ω."""
    reference = base(x)
    count = sum(t.numel() for t in base.parameters())
    tunable = factory_for(base)(base, p)
    b = x.shape[0]
    omega = torch.rand(b, p)
    torch.testing.assert_close(run(tunable, omega[0], x), reference, atol=atol, rtol=1e-5)
    torch.testing.assert_close(run(tunable, omega, x), reference, atol=atol, rtol=1e-5)
    spread_copies(tunable, scale=0.5)
    together = run(tunable, omega, x)
    alone = torch.cat([run(tunable, omega[i], x[i : i + 1]) for i in range(b)])
    torch.testing.assert_close(together, alone, atol=atol, rtol=1e-4)
    plain = tunable.materialize(omega[1])
    assert type(plain) is type(base)
    torch.testing.assert_close(plain(x[1:2]), alone[1:2], atol=atol, rtol=1e-4)
    assert sum(t.numel() for t in plain.parameters()) == count


conv_cases = st.fixed_dictionaries(
    {
        "ndim": st.sampled_from([1, 2, 3]),
        "groups": st.sampled_from([1, 2, 4]),
        "stride": st.integers(1, 2),
        "dilation": st.integers(1, 2),
        "kernel": st.integers(1, 3),
        "padding": st.sampled_from([0, 1, "same", "valid", "tuple"]),
        "padding_mode": st.sampled_from(["zeros", "reflect", "replicate", "circular"]),
        "bias": st.booleans(),
        "depthwise": st.booleans(),
    }
)


def make_conv(case: dict) -> tuple[nn.Module, torch.Tensor]:
    ndim, groups = case["ndim"], case["groups"]
    cin = 4 if not case["depthwise"] else groups * 2
    cout = cin if case["depthwise"] else 4 * (1 + (groups > 1))
    groups = cin if case["depthwise"] else groups
    padding = case["padding"]
    stride = case["stride"]
    if padding == "tuple":
        padding = tuple(range(1, ndim + 1))
    if padding == "same":
        stride = 1
    cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[ndim]
    conv = cls(
        cin,
        cout,
        case["kernel"],
        stride=stride,
        padding=padding,
        dilation=case["dilation"],
        groups=groups,
        bias=case["bias"],
        padding_mode=case["padding_mode"],
    )
    size = {1: (11,), 2: (9, 8), 3: (6, 5, 7)}[ndim]
    return conv, torch.randn(3, cin, *size)


@settings(max_examples=30, deadline=None)
@given(case=conv_cases, p=st.integers(1, 4))
def test_conv_property(case: dict, p: int) -> None:
    conv, x = make_conv(case)
    check_layer(conv, x, p)


def _per_sample_outputs_and_grads(conv: nn.Module, x: torch.Tensor, omega: torch.Tensor, path: str):
    """Output and gradients of a per-sample call with the per-sample path forced (see tunify.layers.conv)."""
    with pytest.MonkeyPatch.context() as patch:
        for limit in ("LOOP_MIN_PIXELS", "LOOP_MIN_MACS"):
            patch.setattr(conv_module, limit, 0 if path == "loop" else 10**12)
        if path != "patches":
            patch.setattr(conv_module, "_patch_size", lambda conv, x: None)
        x = x.clone().requires_grad_(True)
        y = run(conv, omega, x)
        y.square().sum().backward()
    grads = [x.grad] + [t.grad.clone() for t in conv.parameters()]
    conv.zero_grad(set_to_none=True)
    return y.detach(), grads


@settings(max_examples=25, deadline=None)
@given(case=conv_cases, p=st.integers(1, 3), independent=st.booleans())
def test_conv_per_sample_paths_agree(case: dict, p: int, independent: bool) -> None:
    """Folded groups, one convolution per sample and (kernel = stride) batched matmul: one function."""
    conv, x = make_conv(case)
    tunable = factory_for(conv)(conv, p, kernels=p + 1 if independent else None)
    spread_copies(tunable, scale=0.5)
    omega = torch.rand(x.shape[0], p)
    y, grads = _per_sample_outputs_and_grads(tunable, x, omega, "fold")
    for path in ("loop", "patches"):
        y_path, grads_path = _per_sample_outputs_and_grads(tunable, x, omega, path)
        torch.testing.assert_close(y_path, y, atol=1e-5, rtol=1e-4)
        for g_path, g in zip(grads_path, grads, strict=True):
            torch.testing.assert_close(g_path, g, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    ("kernel", "size"),
    [(2, (9,)), (1, (3, 4)), (2, (9, 8)), ((2, 3), (7, 9)), (2, (12, 11)), (2, (5, 4, 6))],
)
@pytest.mark.parametrize("vertex_max_rows", [0, 10**6])
def test_patch_convolutions_per_sample(
    kernel, size: tuple[int, ...], vertex_max_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A convolution whose kernel is its stride (a U-Net's 2×2 stride-2 downsampling) runs per sample as one
    product over its patches, or (few patches) through the vertex kernels; the remainder a convolution drops
    is dropped. Outputs and gradients equal the folded groups'."""
    monkeypatch.setattr(layers_base, "VERTEX_MAX_ROWS", vertex_max_rows)
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[len(size)](4, 5, kernel, stride=kernel)
    tunable = spread_copies(factory_for(conv)(conv, 2), scale=0.5)
    x, omega = torch.randn(3, 4, *size), torch.rand(3, 2)
    patched = []
    y, grads = _per_sample_outputs_and_grads(tunable, x, omega, "fold")
    with pytest.MonkeyPatch.context() as patch:
        rows = conv_module._patch_rows
        patch.setattr(conv_module, "_patch_rows", lambda *a: patched.append(1) or rows(*a))
        y_patches, grads_patches = _per_sample_outputs_and_grads(tunable, x, omega, "patches")
    assert patched
    torch.testing.assert_close(y_patches, y, atol=1e-5, rtol=1e-4)
    for g_patches, g in zip(grads_patches, grads, strict=True):
        torch.testing.assert_close(g_patches, g, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("groups", [1, 2])
def test_conv_transpose_per_sample_paths_agree(groups: int) -> None:
    conv = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=groups)
    tunable = spread_copies(factory_for(conv)(conv, 2), scale=0.5)
    x, omega = torch.randn(3, 4, 5, 6), torch.rand(3, 2)
    y, grads = _per_sample_outputs_and_grads(tunable, x, omega, "fold")
    y_loop, grads_loop = _per_sample_outputs_and_grads(tunable, x, omega, "loop")
    torch.testing.assert_close(y_loop, y, atol=1e-5, rtol=1e-4)
    for g_loop, g in zip(grads_loop, grads, strict=True):
        torch.testing.assert_close(g_loop, g, atol=1e-4, rtol=1e-4)


@settings(max_examples=20, deadline=None)
@given(
    ndim=st.sampled_from([1, 2, 3]),
    groups=st.sampled_from([1, 2]),
    stride=st.integers(1, 3),
    output_padding=st.integers(0, 1),
    dilation=st.integers(1, 2),
    bias=st.booleans(),
    p=st.integers(1, 4),
)
def test_conv_transpose_property(ndim, groups, stride, output_padding, dilation, bias, p) -> None:
    cls = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[ndim]
    output_padding = min(output_padding, max(stride, dilation) - 1)
    conv = cls(
        4,
        6,
        3,
        stride=stride,
        padding=1,
        output_padding=output_padding,
        groups=groups,
        bias=bias,
        dilation=dilation,
    )
    x = torch.randn(3, 4, *{1: (7,), 2: (5, 6), 3: (4, 3, 5)}[ndim])
    check_layer(conv, x, p)


def test_conv_transpose_output_size() -> None:
    conv = nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1)
    x = torch.randn(2, 4, 5, 5)
    reference = conv(x, output_size=[10, 10])
    tunable = factory_for(conv)(conv, 2)
    out = run(tunable, torch.rand(2, 2), x, output_size=[10, 10])
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(4, 8), (4, 5, 8), (12, 5, 8)])
def test_linear(bias: bool, shape: tuple[int, ...]) -> None:
    """(12, 5, 8) with 4 ω rows: 3 rows per sample, as window attention folds windows into the batch."""
    torch.manual_seed(0)
    layer = nn.Linear(8, 6, bias=bias)
    x = torch.randn(*shape)
    reference = layer(x)
    tunable = factory_for(layer)(layer, 3)
    omega = torch.rand(4, 3)
    torch.testing.assert_close(run(tunable, omega, x), reference, atol=1e-5, rtol=1e-5)
    spread_copies(tunable, scale=0.5)
    rows = x.shape[0] // 4
    alone = torch.cat([run(tunable, omega[i], x[i * rows : (i + 1) * rows]) for i in range(4)])
    torch.testing.assert_close(run(tunable, omega, x), alone, atol=1e-5, rtol=1e-5)


def test_rows_not_multiple_of_batch_names_the_layer() -> None:
    tunable = factory_for(nn.Linear(8, 6))(nn.Linear(8, 6), 2)
    with pytest.raises(ValueError, match=r"Linear: per-sample omega has 4 rows .* 5 leading rows"):
        run(tunable, torch.rand(4, 2), torch.randn(5, 8))


MHA_CASES = [
    dict(batch_first=True),
    dict(batch_first=False),
    dict(batch_first=True, kdim=5, vdim=3),
    dict(batch_first=True, bias=False),
    dict(batch_first=True, add_bias_kv=True, add_zero_attn=True),
]


@pytest.mark.parametrize(
    ("kwargs", "masks"),
    [
        (kwargs, masks)
        for kwargs in MHA_CASES
        for masks in ("none", "bool", "float", "causal")
        if not (masks == "causal" and "kdim" in kwargs)  # causal self-attention needs equal dimensions
    ],
)
def test_multihead_attention(kwargs: dict, masks: str) -> None:
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, **kwargs).eval()
    b, lq, lk = 3, 4, 6
    first = (b, lq) if kwargs["batch_first"] else (lq, b)
    firstk = (b, lk) if kwargs["batch_first"] else (lk, b)
    q = torch.randn(*first, 8)
    k = torch.randn(*firstk, kwargs.get("kdim", 8))
    v = torch.randn(*firstk, kwargs.get("vdim", 8))
    call = {}
    if masks == "bool":
        call = dict(key_padding_mask=torch.rand(b, lk) > 0.7, attn_mask=torch.rand(lq, lk) > 0.8)
    elif masks == "float":
        call = dict(attn_mask=torch.randn(b * 2, lq, lk), average_attn_weights=False)
    elif masks == "causal":
        lk, k, v = lq, q.clone(), q.clone()
        call = dict(attn_mask=nn.Transformer.generate_square_subsequent_mask(lq), is_causal=True)
    reference = mha(q, k, v, **call)
    tunable = factory_for(mha)(mha, 3)
    omega = torch.rand(b, 3)
    out = run(tunable, omega, q, k, v, **call)
    torch.testing.assert_close(out[0], reference[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[1], reference[1], atol=1e-5, rtol=1e-5)
    spread_copies(tunable, scale=0.5)
    together = run(tunable, omega, q, k, v, **call)
    for i in range(b):
        sl = (slice(i, i + 1), slice(None)) if kwargs["batch_first"] else (slice(None), slice(i, i + 1))
        one_call = dict(call)
        if "key_padding_mask" in call:
            one_call["key_padding_mask"] = call["key_padding_mask"][i : i + 1]
        if masks == "float":
            one_call["attn_mask"] = call["attn_mask"][i * 2 : i * 2 + 2]
        alone = run(tunable, omega[i], q[sl], k[sl], v[sl], **one_call)
        torch.testing.assert_close(together[0][sl], alone[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(together[1][i : i + 1], alone[1], atol=1e-5, rtol=1e-4)


class StandardisedConv(nn.Conv2d):
    """A subclass with its own forward (like timm's StdConv2d): must not be treated as nn.Conv2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = (self.weight - self.weight.mean(dim=(1, 2, 3), keepdim=True)) / (self.weight.std() + 1e-5)
        return self._conv_forward(x, w, self.bias)


def test_subclass_keeps_its_own_forward() -> None:
    conv = StandardisedConv(4, 6, 3, padding=1)
    assert factory_for(conv) is TunableModule
    check_layer(conv, torch.randn(3, 4, 8, 8), p=2)
