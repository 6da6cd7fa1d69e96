"""Selection, reports, errors, bake and save/load of converted models."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import tunify
from tests.conftest import spread_copies
from tests.convert import models
from tunify.layers.bank import CopyStack


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return models.ConvZooNet().eval()


def test_include_exclude_and_layer_types() -> None:
    report = tunify.convert(small_net(), 2, include=r"(down|up|line)", dry_run=True)
    assert report.names() == ["down", "up", "line"]
    report = tunify.convert(small_net(), 2, exclude=["grouped", "volume"], dry_run=True)
    assert "grouped" not in report.names() and "volume" not in report.names() and "up" in report.names()
    report = tunify.convert(
        small_net(), 2, layer_types=(nn.ConvTranspose2d, nn.ConvTranspose3d), dry_run=True
    )
    assert report.names() == ["up", "volume_up"]
    report = tunify.convert(small_net(), 2, filter_fn=lambda m, name: m.kernel_size[-1] == 5, dry_run=True)
    assert report.names() == ["line"]


def test_dry_run_changes_nothing() -> None:
    net = small_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    report = tunify.convert(net, 3, dry_run=True)
    assert len(report) == 7
    assert net.state_dict().keys() == before.keys()
    assert not any(isinstance(m, tunify.layers.TunableLayer) for m in net.modules())


def test_report_in_print_and_parameter_count() -> None:
    net = small_net()
    original = sum(p.numel() for p in net.parameters())
    tmodel = tunify.convert(net, 3)
    report = tmodel.conversion_report()
    assert sum(p.numel() for p in tmodel.parameters()) == original + report.params_added
    down = next(row for row in report if row.name == "down")
    assert (down.type, down.tunable_class, down.shape) == ("Conv2d", "TunableConv", "(8, 3, 3, 3) (8,)")
    assert down.params_added == 2 * (8 * 3 * 9 + 8) + 9 + 3
    text = repr(tmodel)
    assert "params added" in text and "7 converted" in text


def test_keys_of_unconverted_parts_are_kept() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))
    tmodel = tunify.convert(net, 2)
    keys = set(tmodel.base_model.state_dict())
    assert {"1.weight", "1.bias", "1.running_mean", "0.weight.0", "0.weight.1", "0.phi.weight"} <= keys
    assert type(tmodel.base_model) is nn.Sequential


def test_named_parameters_become_tunable() -> None:
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.beta = nn.Parameter(torch.rand(1, 3, 1, 1))
            self.table = nn.Parameter(torch.rand(5, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.conv(x) * self.beta + self.table[2].view(1, 3, 1, 1)

    torch.manual_seed(0)
    net = Scaled()
    x = torch.randn(4, 3, 6, 6)
    reference = net(x)
    tmodel = tunify.convert(net, 2, parameters=["beta", "table"])
    assert [r.name for r in tmodel.conversion_report() if r.kind == "tensor"] == ["beta", "table"]
    omega = torch.rand(4, 2)
    torch.testing.assert_close(tmodel(x, omega=omega), reference, atol=1e-6, rtol=1e-5)
    spread_copies(tmodel, scale=0.5)
    together = tmodel(x, omega=omega)  # beta broadcasts per sample; the table needs vmap
    alone = torch.cat([tmodel(x[i : i + 1], omega=omega[i]) for i in range(4)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    baked = tunify.bake(tmodel, omega[1])
    assert type(baked) is Scaled and isinstance(baked.beta, nn.Parameter)
    torch.testing.assert_close(baked(x[1:2]), alone[1:2], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("omega", "message"),
    [
        (torch.rand(3), r"omega has shape \(3,\); expected \(2,\) .* \(4, 2\) with one row"),
        (torch.rand(3, 2), r"omega has shape \(3, 2\); expected \(2,\) .* \(4, 2\) with one row"),
        (torch.tensor([0.5, float("nan")]), "NaN or inf"),
        (torch.tensor([0.5, 1.5]), r"must lie in \[0, 1\]"),
        ("0.5,0.5", "a tensor or a sequence of numbers, got str '0.5,0.5'"),
        ([[0.5], [0.5, 0.2]], "a tensor or a sequence of numbers, got list"),
    ],
)
def test_bad_omega(omega: torch.Tensor, message: str) -> None:
    tmodel = tunify.convert(small_net(), 2)
    with pytest.raises(ValueError, match=message):
        tmodel(torch.randn(4, 3, 8, 8), omega=omega)


@pytest.mark.parametrize("omega", [torch.rand(0, 2), torch.rand(0, 2, 6, 6)])
def test_an_empty_batch_with_per_sample_omega(omega: torch.Tensor) -> None:
    """A batch of no samples (the last of a filtered loader, no proposals) with per-sample ω or maps gives
    the empty output, and ω's gradient is empty; it divided by zero."""
    tmodel = tunify.convert(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 2, stride=2)), 2)
    omega = omega.clone().requires_grad_(True)
    y = tmodel(torch.randn(0, 3, 6, 6), omega=omega)
    assert y.shape == (0, 4, 2, 2)
    y.sum().backward()
    assert omega.grad.shape == omega.shape


def test_extrapolation_when_allowed() -> None:
    tmodel = tunify.convert(small_net(), 2, allow_extrapolation=True)
    tmodel(torch.randn(1, 3, 8, 8), omega=torch.tensor([1.5, -0.5]))


@pytest.mark.parametrize("p", [0, -1, 1.5, True])
def test_bad_p(p) -> None:
    with pytest.raises(ValueError, match=r"p .* must be an integer >= 1"):
        tunify.convert(small_net(), p)


def test_errors_name_the_problem() -> None:
    tmodel = tunify.convert(small_net(), 2)
    with pytest.raises(tunify.ConversionError, match="already converted"):
        tunify.convert(tmodel, 2)
    with pytest.raises(tunify.ConversionError, match="already converted"):
        tunify.convert(tmodel.base_model, 2)
    with pytest.raises(tunify.ConversionError, match="no Conv/ConvTranspose/Linear"):
        tunify.convert(nn.Sequential(nn.ReLU(), nn.BatchNorm2d(3)), 2)
    with pytest.raises(tunify.ConversionError, match="filtered out"):
        tunify.convert(small_net(), 2, include="nothing")
    with pytest.raises(tunify.UnsupportedLayerError, match="LSTM"):
        tunify.convert(small_net(), 2, layer_types=(nn.LSTM,))
    with pytest.raises(ValueError, match="include is not a valid regular expression"):
        tunify.convert(small_net(), 2, include="(")
    with pytest.raises(tunify.ConversionError, match="matches no parameter"):
        tunify.convert(small_net(), 2, parameters=["gamma"])
    with pytest.raises(tunify.MissingOmegaError, match="without omega"):
        tmodel.base_model(torch.randn(1, 3, 8, 8))


def test_register_custom_layer() -> None:
    class Scale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.rand(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.weight.view(1, 3, 1, 1)

    tunify.register_tunable(Scale, lambda m, p: tunify.layers.TunableModule(m, p, ("weight",)))
    try:
        with pytest.raises(ValueError, match="already registered"):
            tunify.register_tunable(Scale, tunify.layers.TunableModule)
        net = nn.Sequential(Scale(), nn.Conv2d(3, 3, 1))
        report = tunify.convert(net, 2, dry_run=True)
        assert report.names() == ["0", "1"]
        tmodel = tunify.convert(net, 2)
        assert isinstance(tmodel.base_model[0], tunify.layers.TunableModule)
    finally:
        tunify.layers.unregister_tunable(Scale)


def test_bake_equals_tunable_model_with_original_types_and_keys() -> None:
    net = small_net()
    keys = list(net.state_dict())
    count = sum(p.numel() for p in net.parameters())
    types = [type(m) for m in net.modules()]
    tmodel = spread_copies(tunify.convert(net, 3), scale=0.5)
    omega = torch.tensor([0.1, 0.7, 0.4])
    x = torch.randn(2, 3, 8, 8)
    baked = tunify.bake(tmodel, omega)
    torch.testing.assert_close(baked(x), tmodel(x, omega=omega), atol=1e-5, rtol=1e-5)
    assert list(baked.state_dict()) == keys
    assert sum(p.numel() for p in baked.parameters()) == count
    assert [type(m) for m in baked.modules()] == types
    with pytest.raises(ValueError, match="one omega of shape"):
        tunify.bake(tmodel, torch.rand(2, 3))


def test_bake_leaves_a_users_module_with_a_plain_method_alone() -> None:
    class Block(nn.Sequential):
        def plain(self) -> nn.Module:  # a name of the user's own, not tunify's container protocol
            return nn.Identity()

    net = nn.Sequential(Block(nn.Conv2d(3, 3, 3, padding=1)), nn.ReLU())
    baked = tunify.bake(tunify.convert(net, 2), torch.tensor([0.5, 0.5]))
    assert type(baked[0]) is Block and isinstance(baked[0][0], nn.Conv2d)


def test_save_load_round_trip(tmp_path) -> None:
    tmodel = spread_copies(tunify.convert(models.FunctionalNet(), 2, exclude=[]), scale=0.5)
    path = tmp_path / "tunable.safetensors"
    tunify.save(tmodel, path)
    loaded = tunify.load(models.FunctionalNet(), path)
    x, omega = torch.randn(3, 3, 8, 8), torch.rand(3, 2)
    torch.testing.assert_close(loaded(x, omega=omega), tmodel(x, omega=omega))
    assert loaded.conversion_report().names() == tmodel.conversion_report().names()


def test_save_load_of_a_module_used_under_two_names(tmp_path) -> None:
    torch.manual_seed(0)
    tmodel = spread_copies(tunify.convert(models.SharedNet().eval(), 2), scale=0.5)
    path = tmp_path / "shared.safetensors"
    tunify.save(tmodel, path)
    loaded = tunify.load(models.SharedNet().eval(), path)
    assert loaded.base_model.block is loaded.base_model.again
    x, omega = torch.randn(2, 3, 8, 8), torch.rand(2, 2)
    torch.testing.assert_close(loaded(x, omega=omega), tmodel(x, omega=omega))


def test_load_mismatch_and_corrupt_files(tmp_path) -> None:
    tmodel = tunify.convert(small_net(), 2, include=["down", "up"])
    path = tmp_path / "m.safetensors"
    tunify.save(tmodel, path)
    other = nn.Sequential(nn.Conv2d(3, 8, 3))
    with pytest.raises(tunify.CheckpointError, match=r"does not have the converted layers .*down"):
        tunify.load(other, path)
    wider = small_net()
    wider.down = nn.Conv2d(3, 8, 5, stride=2, padding=2)
    with pytest.raises(tunify.CheckpointError, match=r"shape mismatch \['down.weight.0"):
        tunify.load(wider, path)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[:100])
    with pytest.raises(tunify.CheckpointError, match=r"truncated\.safetensors: not a readable safetensors"):
        tunify.load(small_net(), truncated)
    with pytest.raises(tunify.CheckpointError, match="no such file"):
        tunify.load(small_net(), tmp_path / "absent.safetensors")


def test_copies_are_one_stacked_parameter_and_separate_state_entries() -> None:
    """One [p, *shape] parameter per tensor (mixing is one matmul); one contiguous state entry per copy."""
    tmodel = tunify.convert(copy.deepcopy(small_net()), 4)
    layer = tmodel.base_model.down
    (stack,) = layer.source.stack("weight").parameters()
    assert stack.shape == (4, *layer.weight.shape)
    state = tmodel.base_model.state_dict()
    copies = [state[f"down.weight.{i}"] for i in range(4)]
    assert all(c.is_contiguous() for c in copies)
    assert len({c.data_ptr() for c in copies}) == 4


def test_weight_and_bias_answer_as_tensors() -> None:
    """Like PEFT's wrapped layers: tensors for weight/bias, the original module from get_base_layer()."""
    net = small_net()
    original = net.down.weight.detach().clone()
    tmodel = spread_copies(tunify.convert(net, 2))
    layer = tmodel.base_model.down
    assert isinstance(layer.weight, torch.Tensor) and layer.weight.shape == original.shape
    assert layer.weight.numel() == original.numel() and layer.bias.data.shape == (original.shape[0],)
    assert layer.get_base_layer() is layer.base_layer and layer.kernel_size == (3, 3)
    omega = torch.tensor([0.3, 0.7])
    with tunify.use_omega(omega):
        inside = layer.weight
    expected = tunify.bake(tmodel, omega).down.weight
    torch.testing.assert_close(inside, expected)
    torch.nn.init.zeros_(layer.weight)  # outside a call: the reference copy, a view that init can write
    assert not layer.source.stack("weight").copy(0).any()


@pytest.mark.parametrize("omega", [torch.tensor([0.3, 0.7]), torch.rand(2, 2)])
def test_hooks_on_the_original_layers_keep_firing(omega: torch.Tensor) -> None:
    """Hooks registered before conversion fire once per call on the tunable layer in the original's place
    (a convolution, a Linear, attention run through functional_call), their handles still remove them,
    and the baked network has them again."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(64, 8))
    attention = nn.MultiheadAttention(8, 2, batch_first=True)
    seen: list[tuple] = []
    conv_hook = net[0].register_forward_hook(lambda m, args, out: seen.append(("conv", tuple(out.shape))))
    net[2].register_forward_pre_hook(lambda m, args: seen.append(("linear", tuple(args[0].shape))))
    net[2].register_full_backward_hook(lambda m, grad_in, grad_out: seen.append(("linear grad",)))
    attention.register_forward_hook(lambda m, args, out: seen.append(("attention",)))
    tnet, tattention = tunify.convert(net, 2), tunify.convert(attention, 2)
    x = torch.randn(2, 3, 6, 6)
    tnet(x, omega=omega).sum().backward()
    tokens = torch.randn(2, 5, 8)
    tattention(tokens, tokens, tokens, omega=omega)
    assert seen == [("conv", (2, 4, 4, 4)), ("linear", (2, 64)), ("linear grad",), ("attention",)]
    seen.clear()
    conv_hook.remove()
    baked = tunify.bake(tnet, torch.tensor([0.3, 0.7]))
    tnet(x, omega=omega)
    baked(x)
    assert seen == [("linear", (2, 64)), ("linear", (2, 64))]


def test_anchor_keeps_one_corner_at_the_pretrained_network() -> None:
    net = small_net()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        reference = net(x)
    tmodel = tunify.anchor(tunify.convert(net, 2), 0)
    trainable = [p for p in tmodel.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(trainable, lr=1e-2)
    for _ in range(5):
        optimiser.zero_grad()
        tmodel(x, omega=torch.rand(2, 2)).square().mean().backward()
        optimiser.step()
    with torch.no_grad():
        torch.testing.assert_close(tmodel(x, omega=torch.tensor([1.0, 0.0])), reference, atol=1e-6, rtol=1e-6)
        assert (tmodel(x, omega=torch.tensor([0.0, 1.0])) - reference).abs().max() > 1e-3
    assert all(
        "phi" not in n and not n.endswith(".0") for n, p in tmodel.named_parameters() if p.requires_grad
    )
    with pytest.raises(ValueError, match=r"anchor index must be in \[0, 1\]"):
        tunify.anchor(tmodel, 2)


def test_anchoring_changes_no_output_bit() -> None:
    """Anchoring splits the frozen copy into a parameter of its own; mixing still runs one product over all
    copies, so outputs (shared, per-sample, map ω) and the trainable copies' gradients stay bit for bit."""
    tmodel = spread_copies(tunify.convert(small_net(), 2), scale=0.5)
    anchored = tunify.anchor(copy.deepcopy(tmodel), 0)
    x = torch.randn(3, 3, 8, 8)
    for omega in (torch.tensor([0.3, 0.7]), torch.rand(3, 2), torch.rand(3, 2, 8, 8)):
        ys = []
        for model in (tmodel, anchored):
            model.zero_grad(set_to_none=True)
            y = model(x, omega=omega)
            y.square().sum().backward()
            ys.append(y.detach())
        torch.testing.assert_close(ys[1], ys[0], rtol=0, atol=0)
    stacks = dict(tmodel.named_modules())
    compared = 0
    for name, stack in anchored.named_modules():
        if isinstance(stack, CopyStack):
            (_, whole), *_ = stacks[name].parts()
            for start, part in stack.parts():
                if part.requires_grad:
                    expected = whole.grad[start : start + part.shape[0]]
                    torch.testing.assert_close(part.grad, expected, rtol=0, atol=0, msg=name)
                    compared += 1
    assert compared == sum(isinstance(m, CopyStack) for m in anchored.modules())  # copy 1 of every stack
