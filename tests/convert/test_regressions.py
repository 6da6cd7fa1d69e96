"""Bugs found on main, each reproduced as it was reported."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import tunify
from tests.conftest import spread_copies


def conv_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))


def test_omega_changed_in_place_under_inference_mode_is_seen() -> None:
    """Inference tensors have no version counter: the kernel cache must not serve the first ω again."""
    tmodel = spread_copies(tunify.convert(conv_net(), 2), scale=0.5)
    x = torch.randn(1, 3, 8, 8)
    with torch.inference_mode():
        w = torch.tensor([1.0, 0.0])
        first = tmodel(x, omega=w)
        w[0], w[1] = 0.0, 1.0
        second = tmodel(x, omega=w)
        fresh = tmodel(x, omega=torch.tensor([0.0, 1.0]))
    assert (first - second).abs().max() > 1e-2
    torch.testing.assert_close(second, fresh, atol=0, rtol=0)


def test_an_inference_mode_omega_is_read_once_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a version counter the cache keys ω on its values; each layer reading them again would make a
    GPU network wait for the device at every layer. Once per call, and an in-place change still shows."""
    torch.manual_seed(0)
    net = nn.Sequential(*(nn.Conv2d(4, 4, 3, padding=1) for _ in range(6)))
    tmodel = spread_copies(tunify.convert(net, 2), scale=0.5).eval()
    x = torch.randn(1, 4, 8, 8)
    reads = []
    tolist = torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, "tolist", lambda t: reads.append(t.shape) or tolist(t))
    with torch.inference_mode():
        w = torch.tensor([1.0, 0.0])
        first = tmodel(x, omega=w)
        reads.clear()
        tmodel(x, omega=w)
        assert len(reads) <= 2, reads  # the range check, the cache key: not one per layer (6)
        w[0], w[1] = 0.0, 1.0
        second = tmodel(x, omega=w)
    assert (first - second).abs().max() > 1e-2


def test_batch_dim_1_per_sample_omega_matches_each_sample_alone() -> None:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0)  # sequence-first: (L, B, E)
    tmodel = spread_copies(tunify.convert(nn.Sequential(layer, nn.Linear(16, 4)), 2, batch_dim=1), scale=0.5)
    tmodel.eval()
    x, omega = torch.randn(5, 3, 16), torch.rand(3, 2)
    with torch.no_grad():
        together = tmodel(x, omega=omega)
        alone = torch.cat([tmodel(x[:, i : i + 1], omega=omega[i]) for i in range(3)], dim=1)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


class _SequenceFirstAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(8, 2)  # sequence-first: (L, B, E); its masks are (B, S)

    def forward(self, q, kv, key_padding_mask=None, need_weights=True, attn_mask=None):
        return self.attention(
            q, kv, kv, key_padding_mask=key_padding_mask, need_weights=need_weights, attn_mask=attn_mask
        )


@pytest.mark.parametrize("attn_mask", [None, "2-D", "3-D"])
@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("sizes", [(5, 6, 3), (3, 3, 3)], ids=["L5-S6-B3", "L3-S3-B3"])
def test_batch_dim_1_splits_attention_masks_and_weights_by_their_own_batch_dimension(
    sizes: tuple[int, int, int], need_weights: bool, attn_mask: str | None
) -> None:
    """key_padding_mask and the returned weights are batch-first in sequence-first attention: split in
    dimension 1 they failed, or (S = B) would have been cut along the keys; a 2-D attn_mask is shared, a
    3-D one holds each sample's heads; a None output failed vmap."""
    torch.manual_seed(0)
    tmodel = spread_copies(tunify.convert(_SequenceFirstAttention().eval(), 2, batch_dim=1), scale=0.5)
    length, keys, batch = sizes
    q, kv, omega = torch.randn(length, batch, 8), torch.randn(keys, batch, 8), torch.rand(batch, 2)
    padding = torch.zeros(batch, keys)  # float, as the attention masks (mixed types are deprecated)
    padding[:, -1] = padding[0, 0] = float("-inf")
    masks = {None: None, "2-D": torch.randn(length, keys), "3-D": torch.randn(batch * 2, length, keys)}
    mask = masks[attn_mask]
    with torch.no_grad():
        out, weights = tmodel(q, kv, padding, need_weights, mask, omega=omega)  # masks passed by position
        alone = [
            tmodel(
                q[:, i : i + 1],
                kv[:, i : i + 1],
                padding[i : i + 1],
                need_weights,
                mask if mask is None or mask.ndim == 2 else mask[2 * i : 2 * i + 2],
                omega=omega[i],
            )
            for i in range(batch)
        ]
    torch.testing.assert_close(out, torch.cat([o for o, _ in alone], dim=1), atol=1e-5, rtol=1e-5)
    if need_weights:
        torch.testing.assert_close(weights, torch.cat([w for _, w in alone]), atol=1e-6, rtol=1e-5)
    else:
        assert weights is None


def test_anchor_tells_a_users_own_phi_layer_from_tunifys_phi() -> None:
    """A layer of the user's called ``phi`` is converted like any other: its free copy keeps training."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3)
            self.phi = nn.Linear(2, 2)  # the user's, not tunify's

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.phi(self.conv(x).mean((2, 3)))

    tmodel = tunify.anchor(tunify.convert(Net(), 2), 0)
    trainable = {name for name, q in tmodel.named_parameters() if q.requires_grad}
    assert trainable == {
        "base_model.conv.source.weight.1",
        "base_model.conv.source.bias.1",
        "base_model.phi.source.weight.1",
        "base_model.phi.source.bias.1",
    }


def test_anchor_freezes_what_every_omega_shares_so_the_corner_stays_exact() -> None:
    """Normalisation weights and unconverted layers act at every ω: trained, they would move the corner."""
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.PReLU(8), nn.Conv2d(8, 3, 3, padding=1)
    )
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        reference = net(x)
    tmodel = tunify.anchor(tunify.convert(net, 2, exclude=["3"]), 0)
    assert not any(q.requires_grad for q in tmodel.base_model[1:].parameters())
    optimiser = torch.optim.Adam([q for q in tmodel.parameters() if q.requires_grad], lr=1e-2)
    for _ in range(3):
        optimiser.zero_grad()
        tmodel(x, omega=torch.rand(2, 2)).square().mean().backward()
        optimiser.step()
    with torch.no_grad():
        torch.testing.assert_close(tmodel(x, omega=torch.tensor([1.0, 0.0])), reference)
        assert (tmodel(x, omega=torch.tensor([0.0, 1.0])) - reference).abs().max() > 1e-3


def test_anchor_keeps_batchnorm_statistics_and_bake_gives_their_momentum_back() -> None:
    """Running statistics are shared by every ω and moved in training mode: anchor only warned."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4, momentum=0.2), nn.Conv2d(4, 3, 1))
    net[1].running_mean.uniform_(-1, 1)
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        reference = net.eval()(x)
    tmodel = tunify.anchor(tunify.convert(net, 2), 0).train()
    optimiser = torch.optim.Adam([q for q in tmodel.parameters() if q.requires_grad], lr=1e-2)
    for _ in range(3):
        optimiser.zero_grad()
        tmodel(x + 1, omega=torch.rand(4, 2)).square().mean().backward()
        optimiser.step()
    tmodel.eval()
    with torch.no_grad():
        torch.testing.assert_close(tmodel(x, omega=torch.tensor([1.0, 0.0])), reference)
    assert tunify.bake(tmodel, torch.tensor([1.0, 0.0]))[1].momentum == 0.2


def test_anchored_copy_survives_weight_decay() -> None:
    """The frozen copy is a parameter of its own, so AdamW's decoupled decay never reaches it."""
    net = conv_net()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        reference = net(x)
    tmodel = tunify.anchor(tunify.convert(net, 2), 0)
    optimiser = torch.optim.AdamW(
        [p for p in tmodel.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.5
    )
    for _ in range(3):
        optimiser.zero_grad()
        tmodel(x, omega=torch.rand(2, 2)).square().mean().backward()
        optimiser.step()
    with torch.no_grad():
        torch.testing.assert_close(tmodel(x, omega=torch.tensor([1.0, 0.0])), reference, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_bake_of_half_precision_mixes_in_float32(dtype: torch.dtype) -> None:
    tmodel = spread_copies(tunify.convert(conv_net(), 3), scale=0.5)
    omega = torch.tensor([0.2, 0.3, 0.5])
    tmodel = tmodel.to(dtype)
    expected = tunify.bake(copy.deepcopy(tmodel).float(), omega)[0].weight.to(dtype)  # float32 sum
    baked = tunify.bake(tmodel, omega)
    assert baked[0].weight.dtype == dtype
    torch.testing.assert_close(baked[0].weight, expected, atol=0, rtol=0)


def test_a_float64_network_stays_float64_in_phi_and_bake() -> None:
    """φ and bake mixed a float64 network's kernels in float32 (bake 3e-8 off the tunable network)."""
    torch.manual_seed(0)
    tmodel = spread_copies(tunify.convert(conv_net().double(), 2, parameters=None), scale=0.5)
    assert {p.dtype for p in tmodel.parameters()} == {torch.float64}
    x, omega = torch.rand(2, 3, 8, 8, dtype=torch.float64), torch.tensor([0.3, 0.7], dtype=torch.float64)
    with torch.no_grad():
        exact = sum(a * tmodel.base_model[0].source.stack("weight").copy(i) for i, a in enumerate(omega))
        torch.testing.assert_close(tunify.bake(tmodel, omega)[0].weight, exact, atol=1e-15, rtol=0)
        torch.testing.assert_close(tunify.bake(tmodel, omega)(x), tmodel(x, omega=omega), atol=1e-13, rtol=0)


def test_bake_names_a_layer_with_nan() -> None:
    tmodel = tunify.convert(conv_net(), 2)
    with torch.no_grad():
        tmodel.base_model[2].source.stack("weight").copy(1)[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"bake: 2\.weight has NaN or inf"):
        tunify.bake(tmodel, torch.tensor([0.5, 0.5]))


def test_bake_of_swin2sr_with_its_default_depths_runs() -> None:
    """bake reused the ids of freed layers: a cpb_mlp Linear got another layer's weight."""
    from spandrel.architectures.Swin2SR import Swin2SR

    torch.manual_seed(0)
    net = Swin2SR(img_size=16, window_size=8, embed_dim=6, num_heads=[1] * 6, mlp_ratio=1.0).eval()
    tmodel = spread_copies(tunify.convert(net, 2))
    x, omega = torch.rand(2, 3, 16, 16), torch.tensor([0.3, 0.7])
    with torch.no_grad():
        torch.testing.assert_close(
            tunify.bake(tmodel, omega)(x), tmodel(x, omega=omega), atol=1e-5, rtol=1e-4
        )


class _VersionChecked(nn.Module):
    """A container that refuses a state dict without its format version, as torchvision's MNASNet does."""

    _version = 2

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args) -> None:
        if local_metadata.get("version") is None:
            raise ValueError("version should be set to 1 or 2 instead of None")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args)


def test_weights_without_module_versions_load_into_modules_that_check_them(tmp_path) -> None:
    """safetensors keeps no ``_metadata``: tunify.load, the EMA swap and DNI each failed on MNASNet."""
    from tunify.strategies import dni
    from tunify.train import ModelEMA

    x = torch.randn(1, 3, 8, 8)
    tmodel = spread_copies(tunify.convert(_VersionChecked(), 2), scale=0.5)
    tunify.save(tmodel, tmp_path / "t.safetensors")
    again = tunify.load(_VersionChecked(), tmp_path / "t.safetensors")
    omega = torch.tensor([0.3, 0.7])
    with torch.no_grad():
        torch.testing.assert_close(again(x, omega=omega), tmodel(x, omega=omega), atol=0, rtol=0)
        ema = ModelEMA(tmodel, decay=0.5)
        with ema.swapped_into(tmodel) as swapped:
            swapped(x, omega=omega)
        other = _VersionChecked()
        other.body[0].weight.add_(0.1)
        mixed = dni([_VersionChecked(), other])
        torch.testing.assert_close(mixed(x, omega=torch.tensor([0.0, 1.0])), other(x), atol=1e-6, rtol=0)


class _Siamese(nn.Module):
    """One encoder over two batches concatenated (RAFT, siamese networks): its rows are image-major."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        features = self.encoder(torch.cat([a, b]))
        return self.head(torch.cat(features.chunk(2), dim=1))


class _Windows(nn.Module):
    """Folds 4×4 windows into the batch, sample-major, as window attention does."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.mix = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        windows = x.view(b, c, h // 4, 4, w // 4, 4).permute(0, 2, 4, 3, 5, 1).reshape(-1, 16, c)
        y = self.mix(windows).view(b, h // 4, w // 4, 4, 4, c)
        return y.permute(0, 5, 1, 3, 2, 4).reshape(b, c, h, w)


def test_per_sample_omega_on_concatenated_batches_matches_each_sample_alone() -> None:
    """The layers took B·k rows as sample-major: RAFT's feature encoder gave sample 0's ω to both images of
    the first half of the batch, silently (flow 1.05 px off on 128×128 inputs)."""
    tmodel = spread_copies(tunify.convert(_Siamese(), 2), scale=0.5)
    a, b, omega = torch.randn(3, 3, 8, 8), torch.randn(3, 3, 8, 8), torch.rand(3, 2)
    with torch.no_grad():
        for _ in range(2):  # the first call finds the layout out, the second uses what it found
            together = tmodel(a, b, omega=omega)
            for i in range(3):
                alone = tmodel(a[i : i + 1], b[i : i + 1], omega=omega[i])
                torch.testing.assert_close(together[i : i + 1], alone, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("net", [_Siamese, _Windows])
def test_compiled_per_sample_calls_check_the_layout_too(net: type[nn.Module]) -> None:
    """Under torch.compile the check was skipped: the compiled siamese network was 0.07 off, silently."""
    tmodel = spread_copies(tunify.convert(net(), 2), scale=0.5)
    inputs = (torch.randn(3, 3, 8, 8), torch.randn(3, 3, 8, 8))[: 2 if net is _Siamese else 1]
    omega = torch.rand(3, 2)
    with torch.no_grad():
        alone = [tmodel(*(x[i : i + 1] for x in inputs), omega=omega[i]) for i in range(3)]
        compiled = torch.compile(tmodel, backend="aot_eager")  # dynamo's graph, without a C++ build
        for _ in range(2):
            torch.testing.assert_close(compiled(*inputs, omega=omega), torch.cat(alone), atol=1e-6, rtol=1e-5)
    assert tmodel._vmap_per_sample == (net is _Siamese)  # sample-major windows keep the batched path


def test_windows_folded_sample_major_keep_the_batched_per_sample_path() -> None:
    tmodel = spread_copies(tunify.convert(_Windows(), 2), scale=0.5)
    rows: list[int] = []
    tmodel.base_model.mix.register_forward_pre_hook(lambda m, args: rows.append(args[0].shape[0]))
    x, omega = torch.randn(2, 3, 8, 8), torch.rand(2, 2)
    with torch.no_grad():
        tmodel(x, omega=omega)
        rows.clear()
        together = tmodel(x, omega=omega)
        alone = torch.cat([tmodel(x[i : i + 1], omega=omega[i]) for i in range(2)])
    assert rows[0] == 2 * 4  # one batched call over both samples' four windows, not one per sample
    torch.testing.assert_close(together, alone, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    "norm", [nn.utils.parametrizations.weight_norm, nn.utils.parametrizations.spectral_norm]
)
def test_layers_with_torch_parametrisations_convert_train_and_bake_with_them(norm, tmp_path) -> None:
    """weight_norm'd layers (WDSR, HiFi-GAN) converted with their computed weight as the tunable tensor,
    bypassing the norm; bake then failed (it took the norm for tunify's own parametrisation), and
    copy.deepcopy of the tunable layer returned its base layer alone (a dunder read through)."""
    from tests.convert.test_equivalence import check_model

    def conv_net() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(norm(nn.Conv2d(3, 8, 3, padding=1)), nn.ReLU(), norm(nn.Conv2d(8, 3, 1))).eval()

    def linear() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(norm(nn.Linear(3, 4))).eval()

    tmodel = check_model(conv_net(), torch.randn(2, 3, 6, 6), ps=(2,), atol=1e-5)  # bake keeps classes, keys
    assert isinstance(copy.deepcopy(tmodel.base_model[0]), type(tmodel.base_model[0]))
    assert nn.utils.parametrize.is_parametrized(tunify.bake(tmodel, torch.tensor([0.3, 0.7]))[0], "weight")
    tlinear, x = spread_copies(tunify.convert(linear(), 2), scale=0.5).train(), torch.randn(2, 5, 3)
    tlinear(x, omega=torch.rand(2, 2)).sum().backward()  # per sample, in training (spectral: power iteration)
    tunify.save(tlinear, tmp_path / "n.safetensors")
    again, omega = tunify.load(linear(), tmp_path / "n.safetensors").eval(), torch.tensor([0.6, 0.4])
    with torch.no_grad():
        torch.testing.assert_close(
            again(x, omega=omega), tlinear.eval()(x, omega=omega), atol=1e-6, rtol=1e-5
        )


def test_weights_computed_by_hooks_are_refused_with_what_to_do() -> None:
    """Hook-based weight_norm and pruning failed deep in convert's copy of the network."""
    with pytest.warns(FutureWarning):
        model = nn.Sequential(nn.utils.weight_norm(nn.Conv2d(3, 3, 1)))
    model(torch.randn(1, 3, 4, 4))  # its weight is now a computed tensor, which deepcopy refuses
    with pytest.raises(ValueError, match=r"0 uses torch.nn.utils.weight_norm.*parametrizations.weight_norm"):
        tunify.convert(model, 2)
    pruned = nn.Sequential(nn.Conv2d(3, 3, 1))
    nn.utils.prune.l1_unstructured(pruned[0], "weight", amount=0.5)
    pruned(torch.randn(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"0 is pruned .*prune.remove\(module, 'weight'\)"):
        tunify.convert(pruned, 2)


def test_weights_tied_between_converted_layers_are_named_in_a_warning() -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = nn.Conv2d(3, 8, 3, padding=1)
            self.dec = nn.ConvTranspose2d(8, 3, 3, padding=1)
            self.dec.weight = self.enc.weight

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.dec(torch.relu(self.enc(x)))

    with pytest.warns(UserWarning, match=r"enc.weight and dec.weight are one tensor \(tied\)") as caught:
        tunify.convert(Tied().eval(), 2)
    assert caught[0].filename == __file__  # points at the caller's convert


def test_lazy_and_scripted_models_are_refused_clearly_and_meta_models_run() -> None:
    """A lazy layer failed with torch's 'uninitialized parameter', a ScriptModule with 'get_submodule is not
    supported', and a converted model on the meta device (shape inference) in the ω check's .item()."""
    with pytest.raises(ValueError, match=r"0.weight is not initialised yet \(a lazy layer\)"):
        tunify.convert(nn.Sequential(nn.LazyConv2d(8, 3)), 2)
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="TorchScript"):
        tunify.convert(torch.jit.script(nn.Sequential(nn.Conv2d(3, 8, 3))), 2)
    meta = nn.Sequential(nn.Conv2d(3, 8, 3, device="meta"), nn.Flatten(), nn.Linear(8 * 36, 4, device="meta"))
    tmodel = tunify.convert(meta, 2)
    for omega in (torch.rand(2, device="meta"), torch.rand(2, 2, device="meta")):
        assert tmodel(torch.empty(2, 3, 8, 8, device="meta"), omega=omega).shape == (2, 4)


def test_adafm_on_a_parametrised_convolution_bakes_its_filter() -> None:
    """FilteredConv read dunders through to its convolution: copy.deepcopy (bake) of one whose convolution
    is weight_norm'd returned the convolution alone, dropping the AdaFM filter (0.1 off)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.utils.parametrizations.weight_norm(nn.Conv2d(3, 8, 3, padding=1)), nn.ReLU())
    tmodel = spread_copies(tunify.convert(net.eval(), 2, strategy="adafm"), scale=0.5)
    with torch.no_grad():
        for name, param in tmodel.named_parameters():
            if ".1.source." in name:  # the filter's deltas start at zero
                param.add_(0.1 * torch.randn_like(param))
        x, omega = torch.rand(2, 3, 8, 8), torch.tensor([0.3, 0.7])
        baked = tunify.bake(tmodel, omega)
        torch.testing.assert_close(baked(x), tmodel(x, omega=omega), atol=1e-6, rtol=1e-5)
