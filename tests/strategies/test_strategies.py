"""Every control strategy of ``tunify.convert(..., strategy=...)``: exact at conversion, one API for per-sample
and per-pixel ω, bake, save/load, Hub folders, the report, anchor, errors before any change, two-stage."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import tunify
from tunify.convert import ConversionError
from tunify.convert.io import load_strict, read_checkpoint
from tunify.strategies import get_strategy, strategy_names
from tunify.strategies.atoms import svd_atoms
from tunify.train import TrainConfig, train_two_stage, training_stage

CASES = {
    "kernels": ("kernels", {}),
    "lowrank": ("lowrank", {"rank": 2}),
    "atoms": ("atoms", {}),
    "atoms_m4_over": ("atoms", {"atoms": 4, "overcomplete": 2}),
    "atoms_over": ("atoms", {"overcomplete": 2}),  # m = k²: as many atoms as each kernel has (6 depthwise)
    "adafm": ("adafm", {}),
    "adafm_k3": ("adafm", {"kernel_size": 3}),
    "ftn": ("ftn", {"groups": 2}),
}
DELTA = [c for c in CASES if c != "kernels"]


def conv_net() -> nn.Module:
    """Plain, grouped, depthwise, transposed and 1×1 convolutions: every conv shape the strategies treat
    differently (the depthwise 5×5 kernel has fewer rows, 6, than k² = 25: fewer filter atoms than k²)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=1, groups=2),
        nn.ReLU(),
        nn.Conv2d(6, 6, 5, padding=2, groups=6),
        nn.ConvTranspose2d(6, 4, 2, stride=2),
        nn.ReLU(),
        nn.Conv2d(4, 3, 1),
    )


class TokenNet(nn.Module):
    """Linear layers and attention, for the strategies that take them."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.inp = nn.Linear(5, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.out = nn.Linear(8, 3)

    def forward(self, x: Tensor) -> Tensor:
        h = self.inp(x)
        return self.out(self.attn(h, h, h, need_weights=False)[0])


def convert(case: str, net: nn.Module | None = None, p: int = 2, **kwargs) -> tunify.TunableModel:
    strategy, options = CASES[case]
    return tunify.convert(conv_net() if net is None else net, p, strategy=strategy, **options, **kwargs)


def train_a_little(tmodel: nn.Module, seed: int = 0) -> nn.Module:
    """Move every trainable non-φ parameter, as training would (φ kept: α(e_i) = e_i)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in tmodel.named_parameters():
            if param.requires_grad and ".phi." not in f".{name}.":
                param.add_(0.1 * torch.randn(param.shape, generator=g))
    return tmodel


def state_numel(module: nn.Module) -> int:
    return sum(t.numel() for t in module.state_dict().values())


X = torch.rand(3, 3, 8, 8)


@pytest.mark.parametrize("case", list(CASES))
def test_exact_at_conversion_for_every_form_of_omega(case: str) -> None:
    ref = conv_net()(X)
    tmodel = convert(case)
    g = torch.Generator().manual_seed(0)
    for omega in (
        torch.tensor([0.3, 0.7]),
        torch.rand(3, 2, generator=g),
        torch.rand(3, 2, 8, 8, generator=g),
    ):
        torch.testing.assert_close(tmodel(X, omega=omega), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_trained_network_per_sample_per_pixel_and_bake_agree(case: str) -> None:
    tmodel = train_a_little(convert(case))
    omegas = torch.tensor([[0.0, 1.0], [0.4, 0.6], [1.0, 0.0]])
    batched = tmodel(X, omega=omegas)
    assert not torch.allclose(batched[0], tmodel(X[:1], omega=omegas[1])[0], atol=1e-3)  # ω matters
    for i, omega in enumerate(omegas):
        shared = tmodel(X[i : i + 1], omega=omega)
        torch.testing.assert_close(batched[i : i + 1], shared, atol=1e-5, rtol=1e-5)
        constant_map = omega.view(1, 2, 1, 1).expand(1, 2, 8, 8)
        torch.testing.assert_close(tmodel(X[i : i + 1], omega=constant_map), shared, atol=1e-5, rtol=1e-5)
        plain = tunify.bake(tmodel, omega)
        torch.testing.assert_close(plain(X[i : i + 1]), shared, atol=1e-5, rtol=1e-5)
        assert not any("tunify" in type(m).__module__ for m in plain.modules())
    original = conv_net()
    if CASES[case][0] == "adafm":  # the depthwise filters stay: C·(k² + 1) per convolution
        k = CASES[case][1].get("kernel_size", 1)
        extra = sum(c.out_channels * (k * k + 1) for c in original if isinstance(c, nn.modules.conv._ConvNd))
        assert state_numel(plain) == state_numel(original) + extra
    else:
        assert [type(m) for m in plain] == [type(m) for m in original]
        assert state_numel(plain) == state_numel(original)


@pytest.mark.parametrize("case", list(CASES))
def test_an_edit_of_any_parameter_shows_in_the_next_call_without_autograd(case: str) -> None:
    """At inference the mixed tensors are cached and checked once per call (cache epochs): whichever
    parameter is changed in place between two calls at the same ω, the next call computes afresh."""
    tmodel = train_a_little(convert(case)).eval()
    x, omega = torch.randn(2, 3, 8, 8), torch.tensor([0.3, 0.7])
    g = torch.Generator().manual_seed(0)
    for name, param in tmodel.named_parameters():
        with torch.no_grad():
            tmodel(x, omega=omega)
            param.add_(0.5 * torch.randn(param.shape, generator=g))
            cached = tmodel(x, omega=omega)
        with torch.enable_grad():
            fresh = tmodel(x, omega=omega.clone()).detach()
        torch.testing.assert_close(cached, fresh, atol=1e-6, rtol=1e-5, msg=f"stale after editing {name}")


@pytest.mark.parametrize("case", list(CASES))
def test_runs_under_bfloat16_autocast_for_every_form_of_omega(case: str) -> None:
    """Autocast computes factor products (low-rank, atoms) in bfloat16 while α stays float32."""
    tmodel = train_a_little(convert(case))
    g = torch.Generator().manual_seed(0)
    for omega in (
        torch.tensor([0.3, 0.7]),
        torch.rand(3, 2, generator=g),
        torch.rand(3, 2, 8, 8, generator=g),
    ):
        with torch.no_grad():
            expected = tmodel(X, omega=omega)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                y = tmodel(X, omega=omega)
        torch.testing.assert_close(y.float(), expected, atol=0.05, rtol=0.05)


class PooledNet(nn.Module):
    """Layers that see few rows per sample: channel attention on pooled features, 1×1 convolutions on a 4×4
    bottleneck (through the vertices) and on a 5×5 one (per-sample weights), a 2×2 stride-2 downsampling
    onto the 4×4 grid (16 patches), a Linear on its 16 pixels as tokens, and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.attention = nn.Conv2d(6, 6, 1)
        self.down = nn.Conv2d(6, 6, 2, stride=2)
        self.bottleneck4 = nn.Conv2d(6, 5, 1)
        self.bottleneck5 = nn.Conv2d(6, 5, 1)
        self.tokens = nn.Linear(5, 6)
        self.head = nn.Linear(6, 4)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv(x)
        h = h * torch.sigmoid(self.attention(h.mean((2, 3), keepdim=True)))
        small = self.bottleneck4(self.down(F.adaptive_avg_pool2d(h, 8)))
        larger = self.bottleneck5(F.adaptive_avg_pool2d(h, 5))
        tokens = self.tokens(small.flatten(2).transpose(1, 2)).mean(1)
        return self.head(h.mean((2, 3)) + tokens) + larger.mean((2, 3)).sum(1, keepdim=True)


@pytest.mark.parametrize("case", ["kernels", "lowrank", "atoms", "ftn"])
@pytest.mark.parametrize("independent", [False, True])
def test_few_rows_per_sample_match_each_sample_alone(case: str, independent: bool) -> None:
    """Outputs and every gradient of a per-sample call equal those of the samples run one by one, through
    the vertices (one row per sample; 16 with more samples than kernels) and through per-sample weights
    (25 rows)."""
    tmodel = train_a_little(convert(case, PooledNet(), independent=independent))
    x, omega = torch.randn(4, 3, 10, 10), torch.rand(4, 2)
    _check_per_sample_against_alone(tmodel, x, omega)


def _check_per_sample_against_alone(tmodel: tunify.TunableModel, x: Tensor, omega: Tensor) -> None:

    def outputs_and_grads(together: bool) -> tuple[Tensor, dict[str, Tensor]]:
        tmodel.zero_grad(set_to_none=True)
        if together:
            y = tmodel(x, omega=omega)
        else:
            y = torch.cat([tmodel(x[i : i + 1], omega=omega[i]) for i in range(len(x))])
        y.square().sum().backward()
        return y.detach(), {n: t.grad for n, t in tmodel.named_parameters() if t.grad is not None}

    y, grads = outputs_and_grads(together=True)
    y_alone, grads_alone = outputs_and_grads(together=False)
    torch.testing.assert_close(y, y_alone, atol=1e-5, rtol=1e-4)
    assert grads.keys() == grads_alone.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, grads_alone[name], atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("case", DELTA)
def test_report_counts_what_the_state_dict_gains(case: str) -> None:
    original = state_numel(conv_net())
    tmodel = convert(case)
    report = tmodel.conversion_report()
    assert report.params_added == state_numel(tmodel) - original
    assert tunify.convert(
        conv_net(), 2, strategy=CASES[case][0], dry_run=True, **CASES[case][1]
    ).params_added == (report.params_added)
    assert CASES[case][0] in str(report)


def test_parameter_counts_follow_the_formulas() -> None:
    """lowrank: r·(rows + cols) per entry; atoms: m·k² per entry + the m·k² atoms; p = 2: one entry."""
    phi = 2 * 2 + 2
    lowrank = tunify.convert(conv_net(), 2, strategy="lowrank", rank=2).conversion_report()
    # first conv (6, 3·9): r·(6 + 27) + bias 6
    assert lowrank[0].params_added == 2 * (6 + 27) + 6 + phi
    atoms = tunify.convert(conv_net(), 2, strategy="atoms", atoms=4).conversion_report()
    assert atoms[0].params_added == 2 * 4 * 9 + 6 + phi
    full = tunify.convert(conv_net(), 2, strategy="atoms").conversion_report()
    assert full[2].params_added == 2 * 6 * 25 + 6 + phi  # depthwise 5×5: 6 rows, so 6 atoms, not k² = 25
    assert "no spatial kernel" in atoms[-1].tunable_class  # the 1×1 convolution falls back to lowrank
    assert atoms[-1].params_added == 3 * (3 + 4) + 3 + phi  # rank capped at min(3, 4)


@pytest.mark.parametrize("case", ["lowrank", "atoms_m4_over", "adafm_k3", "ftn"])
def test_save_load_and_hub_round_trip_with_the_strategy(case: str, tmp_path) -> None:
    tmodel = train_a_little(convert(case))
    omega = torch.tensor([0.25, 0.75])
    expected = tmodel(X, omega=omega)
    tunify.save(tmodel, tmp_path / "m.safetensors")
    loaded = tunify.load(conv_net(), tmp_path / "m.safetensors")
    torch.testing.assert_close(loaded(X, omega=omega), expected)
    tmodel.save_pretrained(tmp_path / "hub")
    spec = json.loads((tmp_path / "hub" / "config.json").read_text())["conversion"]
    strategy, options = CASES[case]
    assert spec["strategy"] == strategy
    assert spec["strategy_options"] == get_strategy(strategy, **options).options
    hub = tunify.from_pretrained(tmp_path / "hub", model=conv_net())
    torch.testing.assert_close(hub(X, omega=omega), expected)


def test_load_refuses_a_checkpoint_of_another_rank(tmp_path) -> None:
    tmodel = tunify.convert(conv_net(), 2, strategy="lowrank", rank=2)
    tunify.save(tmodel, tmp_path / "m.safetensors")
    other = tunify.convert(conv_net(), 2, strategy="lowrank", rank=3)
    state = read_checkpoint(tmp_path / "m.safetensors")[0]
    with pytest.raises(tunify.CheckpointError, match="shape mismatch"):
        load_strict(other, state, "m.safetensors")


@pytest.mark.parametrize("case", ["lowrank", "atoms", "adafm", "ftn"])
@pytest.mark.parametrize("independent", [False, True])
def test_anchor_keeps_the_fidelity_end_exact(case: str, independent: bool) -> None:
    ref = conv_net()(X)
    tmodel = convert(case, independent=independent)
    index = 2 if independent else 0  # the base entry (ω = 0) with independent entries
    tunify.anchor(tmodel, index)
    train_a_little(tmodel)
    at_end = torch.zeros(2) if independent else torch.tensor([1.0, 0.0])
    torch.testing.assert_close(tmodel(X, omega=at_end), ref, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(tmodel(X, omega=torch.tensor([0.0, 1.0])), ref, atol=1e-3)


@pytest.mark.parametrize("strategy", ["lowrank", "atoms", "ftn"])
def test_linear_and_attention(strategy: str) -> None:
    x = torch.rand(2, 4, 5)
    ref = TokenNet()(x)
    tmodel = tunify.convert(TokenNet(), 2, strategy=strategy)
    torch.testing.assert_close(tmodel(x, omega=torch.rand(2, 2)), ref, atol=1e-5, rtol=1e-5)
    train_a_little(tmodel)
    omegas = torch.tensor([[0.2, 0.8], [0.9, 0.1]])
    batched = tmodel(x, omega=omegas)
    for i in range(2):
        torch.testing.assert_close(batched[i], tmodel(x[i : i + 1], omega=omegas[i])[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            tunify.bake(tmodel, omegas[i])(x[i : i + 1])[0], batched[i], atol=1e-5, rtol=1e-5
        )


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
@pytest.mark.parametrize("strategy", ["kernels", "lowrank", "atoms", "ftn"])
def test_an_empty_layer_converts(strategy: str) -> None:
    """Small configs of real networks have layers of size 0 (spandrel's DAT); they convert and run."""
    net = nn.Sequential(nn.Linear(5, 0), nn.Linear(0, 3))
    x = torch.rand(2, 4, 5)
    ref = net(x)
    tmodel = tunify.convert(net, 2, strategy=strategy)
    torch.testing.assert_close(tmodel(x, omega=torch.rand(2, 2)), ref)
    torch.testing.assert_close(tunify.bake(tmodel, torch.tensor([0.5, 0.5]))(x), ref)


def test_unsupported_layers_and_p_raise_before_anything_changes() -> None:
    net = TokenNet()
    before = copy.deepcopy(net.state_dict())
    with pytest.raises(ConversionError, match=r"'adafm' cannot convert layer 'inp' \(Linear\)"):
        tunify.convert(net, 2, strategy="adafm")
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert type(net.inp) is nn.Linear
    net = conv_net()
    with pytest.raises(ConversionError, match=r"strategy 'lowrank' cannot convert layer '0' with p = 1"):
        tunify.convert(net, 1, strategy="lowrank")
    assert type(net[0]) is nn.Conv2d
    with pytest.raises(ConversionError, match="unknown strategy 'lora'; known: kernels"):
        tunify.convert(net, 2, strategy="lora")
    with pytest.raises(ConversionError, match=r"has no option\(s\) \['rnak'\]"):
        tunify.convert(net, 2, strategy="lowrank", rnak=4)
    with pytest.raises(ConversionError, match="kernel_size must be an odd integer"):
        tunify.convert(net, 2, strategy="adafm", kernel_size=2)
    assert type(net[0]) is nn.Conv2d
    tunify.convert(net, 1, strategy="lowrank", independent=True)  # p = 1 with a base entry is fine


@pytest.mark.parametrize("case", ["adafm", "ftn", "lowrank"])
def test_more_than_two_entries(case: str) -> None:
    """p = 3: one delta per entry besides the fidelity one; e_0 reads none of them."""
    ref = conv_net()(X)
    tmodel = convert(case, p=3)
    tunify.anchor(tmodel, 0)
    train_a_little(tmodel)
    torch.testing.assert_close(tmodel(X, omega=torch.tensor([1.0, 0.0, 0.0])), ref, atol=1e-5, rtol=1e-5)
    outs = [tmodel(X, omega=torch.eye(3)[i]) for i in (1, 2)]
    assert not torch.allclose(outs[0], outs[1], atol=1e-3)


def test_atoms_decomposition_is_exact_and_truncation_keeps_a_remainder() -> None:
    w = torch.randn(5, 4, 3, 3)
    atoms = svd_atoms(w, 9)
    torch.testing.assert_close(atoms @ atoms.T, torch.eye(9), atol=1e-5, rtol=0)  # an orthonormal basis
    flat = w.reshape(-1, 9)
    torch.testing.assert_close((flat @ atoms.T) @ atoms, flat, atol=1e-5, rtol=1e-5)  # W = A·D exactly
    truncated = svd_atoms(w, 3)
    remainder = flat - (flat @ truncated.T) @ truncated
    assert remainder.norm() > 1e-3  # m < k²: the remainder is kept as a fixed term (the net stays exact)
    tmodel = tunify.convert(conv_net(), 2, strategy="atoms", atoms=3)
    torch.testing.assert_close(tmodel(X, omega=torch.tensor([0.5, 0.5])), conv_net()(X), atol=1e-5, rtol=1e-5)


def test_sources_are_affine_in_alpha() -> None:
    """The per-pixel path needs tensors(α) = C + Σ α_i D_i; checked at random α after training."""
    tmodel = train_a_little(convert("atoms_m4_over", p=3))
    layer = tmodel.base_model[2]
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        alpha = torch.randn(3, generator=g)
        got = layer.source(alpha)["weight"]
        corners = layer.source(torch.eye(3))["weight"]
        torch.testing.assert_close(got, torch.tensordot(alpha, corners, dims=1), atol=1e-5, rtol=1e-5)


def test_strategy_names() -> None:
    assert set(strategy_names()) >= {"kernels", "lowrank", "atoms", "adafm", "ftn"}


@pytest.mark.parametrize("case", ["adafm", "ftn"])
def test_two_stage_trains_the_base_then_only_the_added_modules(case: str, tmp_path) -> None:
    tmodel = convert(case)
    names = {id(p): n for n, p in tmodel.named_parameters()}
    with training_stage(tmodel, "a", 0):
        stage_a = {names[id(p)] for p in tmodel.parameters() if p.requires_grad}
    with training_stage(tmodel, "b", 1):
        stage_b = {names[id(p)] for p in tmodel.parameters() if p.requires_grad}
    assert all(p.requires_grad for p in tmodel.parameters())  # restored
    assert stage_a and stage_b and not stage_a & stage_b
    assert not any(".phi." in n for n in stage_a | stage_b)
    assert all(".1." in f"{n}." for n in stage_b)  # only entry 1's modules

    data = [{"input": torch.rand(3, 8, 8), "target": torch.rand(3, 16, 16)} for _ in range(4)]
    loss = lambda out, batch, omega: (out - batch["target"]).square().mean()  # noqa: E731
    before = {n: p.detach().clone() for n, p in tmodel.named_parameters()}
    config = TrainConfig(total_steps=2, batch_size=2, lr=1e-2, warmup_steps=0, progress=False, log_every=1)
    train_two_stage(tmodel, loss, data, config, config, tmp_path)
    changed = {n for n, p in tmodel.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= stage_a | stage_b
    assert changed & stage_a and changed & stage_b


def test_a_stopped_two_stage_run_resumes(tmp_path) -> None:
    """Stopped in stage B, the run continues from B's last checkpoint with A read back, and ends where an
    uninterrupted run ends."""
    data = [{"input": torch.rand(3, 8, 8), "target": torch.rand(3, 16, 16)} for _ in range(4)]
    loss = lambda out, batch, omega: (out - batch["target"]).square().mean()  # noqa: E731
    config = TrainConfig(
        total_steps=4, batch_size=2, lr=1e-2, progress=False, log_every=1, checkpoint_every=2
    )
    torch.manual_seed(0)
    whole = train_two_stage(convert("adafm"), loss, data, config, config, tmp_path / "whole").state_dict()

    calls = []

    def stops_in_stage_b(out, batch, omega):  # stage A takes calls 1-4; call 7 is stage B's third step
        calls.append(1)
        if len(calls) == 7:
            raise KeyboardInterrupt
        return loss(out, batch, omega)

    torch.manual_seed(0)
    tmodel = convert("adafm")
    with pytest.raises(KeyboardInterrupt):
        train_two_stage(tmodel, stops_in_stage_b, data, config, config, tmp_path / "stopped")
    with pytest.raises(ValueError, match="pass resume=True"):
        train_two_stage(tmodel, loss, data, config, config, tmp_path / "stopped")
    torch.manual_seed(0)
    resumed = train_two_stage(convert("adafm"), loss, data, config, config, tmp_path / "stopped", resume=True)
    resumed = resumed.state_dict()
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)


def test_two_stage_refuses_kernels() -> None:
    tmodel = tunify.convert(conv_net(), 2)
    with pytest.raises(ValueError, match=r"tunify\.strategies\.dni"), training_stage(tmodel, "b", 1):
        pass


def test_lowrank_rank_is_capped_by_the_matrix() -> None:
    tmodel = tunify.convert(conv_net(), 2, strategy="lowrank", rank=50)
    last = tmodel.base_model[7].source.tensor("weight")  # (3, 4) matrix: rank at most 3
    assert last.rank == 3
    assert math.isclose(
        tmodel(X, omega=torch.tensor([0.5, 0.5])).sum().item(), conv_net()(X).sum().item(), rel_tol=1e-5
    )


def test_recipes_take_the_strategy_as_config_keys() -> None:
    from tunify.recipes._base import convert_network
    from tunify.recipes._config import apply_overrides, config_path, load_config

    cfg = apply_overrides(
        load_config(config_path("denoise")), ["model.strategy=lowrank", "model.strategy_options={rank: 2}"]
    )
    assert cfg["model"]["strategy_options"] == {"rank": 2}
    tmodel = convert_network(conv_net(), {"p": 2, "model": {**cfg["model"], "targets": {}}})
    assert tmodel.config.strategy == "lowrank" and tmodel.config.strategy_options == {"rank": 2}
    base = tmodel.base_model[0].source.tensor("weight").base
    assert not base.requires_grad  # model.anchor: 0 with a pretrained init froze W


def test_adafm_layers_answer_as_their_convolution() -> None:
    """Code that reads ``layer.weight`` (reparameterised blocks, init code) works on an AdaFM layer too."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 1))
    weight = net[0].weight.detach().clone()
    layer = tunify.convert(net, 2, strategy="adafm").base_model[0]
    torch.testing.assert_close(layer.weight, weight)
    assert layer.stride == (1, 1) and layer.get_base_layer() is layer[0]
