"""ω under checkpointing, compile, DDP, inference mode, threads; gradients; objectives separate."""

from __future__ import annotations

import copy
import os
import socket
import threading

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.checkpoint import checkpoint

import tunify
from tests.conftest import spread_copies
from tunify.layers import base as layers_base


class CheckpointedNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        if self.training:
            return checkpoint(self.block, h, use_reentrant=False)
        return self.block(h)


def tunable_net(p: int = 2) -> tunify.TunableModel:
    torch.manual_seed(0)
    return spread_copies(tunify.convert(CheckpointedNet(), p), scale=0.5)


def grads(tmodel: tunify.TunableModel, x: torch.Tensor, omega: torch.Tensor) -> dict[str, torch.Tensor]:
    tmodel.zero_grad()
    tmodel(x, omega=omega).square().mean().backward()
    return {n: p.grad.clone() for n, p in tmodel.named_parameters()}


def test_gradient_checkpointing_matches_and_reaches_every_copy() -> None:
    tmodel = tunable_net()
    x, omega = torch.randn(3, 3, 8, 8), torch.rand(3, 2)
    with_checkpoint = grads(tmodel.train(), x, omega)
    without = grads(tmodel.eval(), x, omega)
    assert with_checkpoint.keys() == without.keys()
    for name, grad in with_checkpoint.items():
        torch.testing.assert_close(grad, without[name], atol=1e-6, rtol=1e-5)
        per_copy = grad.reshape(grad.shape[0], -1).abs().sum(1) if ".source." in name else grad.abs().sum()
        assert (per_copy > 0).all(), f"no gradient reached (a copy of) {name}"
    assert any(".source." in n for n in with_checkpoint) and any(".phi." in n for n in with_checkpoint)


class ReentrantNet(nn.Module):
    """Checkpoints its first block the old way (``use_reentrant=True``: the block's forward runs without
    autograd and is run again in backward), so the first layer to ask for α does so without autograd."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 1))
        self.head = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.head(checkpoint(self.block, x, use_reentrant=True))
        return self.head(self.block(x))


@pytest.mark.parametrize("net", [CheckpointedNet, ReentrantNet])
def test_every_layer_gets_its_alpha_gradient_from_the_calls_alpha_table(net: type) -> None:
    """At per-sample ω a converted network maps ω through every layer's φ at once (one product, the layers
    read slices): with and without gradient checkpointing of either kind, every parameter's gradient (φ's
    included) is what the layers give when each maps ω itself (a bare ``use_omega`` block has no table)."""
    omega = torch.rand(3, 2)
    torch.manual_seed(0)
    tmodel = spread_copies(tunify.convert(net(), 2), scale=0.5)
    x = torch.randn(3, 3, 8, 8, requires_grad=True)

    def gradients(run) -> dict[str, torch.Tensor]:
        tmodel.zero_grad()
        x.grad = None
        run().square().mean().backward()
        return {"x": x.grad.clone(), **{n: p.grad.clone() for n, p in tmodel.named_parameters()}}

    def own_alphas() -> torch.Tensor:
        with tunify.use_omega(omega):
            return tmodel.base_model(x)

    tmodel.eval()
    expected = gradients(own_alphas)  # evaluation mode: not checkpointed
    assert all(g.abs().sum() > 0 for n, g in expected.items() if ".phi." in f".{n}")
    for mode in (True, False):  # checkpointed, then not
        tmodel.train(mode)
        for name, grad in gradients(lambda: tmodel(x, omega=omega)).items():
            torch.testing.assert_close(grad, expected[name], atol=1e-6, rtol=1e-5, msg=name)


def test_only_per_sample_calls_get_an_alpha_table() -> None:
    """At a shared ω each layer maps ω with the product ``tunify.bake`` uses, so the baked network is the live
    one to the bit; maps are resampled per layer."""
    from tunify.layers.alphas import AlphaTable

    for omega, table in [
        (torch.rand(3, 2), True),
        (torch.tensor([0.3, 0.7]), False),
        (torch.rand(1, 2), False),
        (torch.rand(3, 2, 4, 4), False),
    ]:
        assert (AlphaTable.for_call(omega, []) is not None) is table, tuple(omega.shape)
    tmodel = spread_copies(tunify.convert(CheckpointedNet(), 2), scale=0.5).eval()
    x, omega = torch.randn(2, 3, 8, 8), torch.tensor([0.3, 0.7])
    with torch.no_grad():
        torch.testing.assert_close(tunify.bake(tmodel, omega)(x), tmodel(x, omega=omega), atol=0, rtol=0)


def test_checkpointed_forwards_at_two_omegas_before_one_backward_are_refused_not_mixed_up() -> None:
    """Both segments would be recomputed at the last ω: wrong gradients, silently. Calls at the same ω, and
    a graph kept from a step already backpropagated, are recomputed right."""
    tmodel = tunable_net().train()
    x, w1, w2 = torch.randn(3, 3, 8, 8), torch.rand(3, 2), torch.rand(3, 2)

    def two_calls(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return tmodel(x, omega=first).square().mean() + 2 * tmodel(x, omega=second).abs().mean()

    with pytest.raises(RuntimeError, match="cannot tell which omega the segment ran at"):
        two_calls(w1, w2).backward()
    tmodel.zero_grad()
    two_calls(w1, w1.clone()).backward()
    checkpointed = {n: p.grad.clone() for n, p in tmodel.named_parameters()}
    tmodel.eval().zero_grad()
    two_calls(w1, w1.clone()).backward()
    for name, grad in checkpointed.items():
        torch.testing.assert_close(grad, tmodel.get_parameter(name).grad, atol=1e-6, rtol=1e-5)

    tmodel.train()
    kept = tmodel(x, omega=w1)  # kept after its backward, as a logged output would be
    kept.mean().backward()
    with_checkpoint = grads(tmodel, x, w2)
    assert with_checkpoint.keys() == checkpointed.keys()
    without = grads(tmodel.eval(), x, w2)
    for name, grad in with_checkpoint.items():
        torch.testing.assert_close(grad, without[name], atol=1e-6, rtol=1e-5)
    assert copy.deepcopy(tmodel)(x, omega=w2).shape == x.shape  # the record of calls is not copied


class ChannelsLastNet(nn.Module):
    """A 3×3 convolution, a 2×2 stride-2 downsampling onto 4×4, a 1×1 convolution there (few rows per sample)
    and a Conv1d over the flattened map (whose stacked copies are 4-D, as a 2-D image's)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.down = nn.Conv2d(8, 8, 2, stride=2)
        self.pointwise = nn.Conv2d(8, 8, 1)
        self.sequence = nn.Conv1d(8, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sequence(self.pointwise(self.down(self.conv(x))).flatten(2))


@pytest.mark.parametrize("vertex_max_rows", [0, 16])
def test_channels_last_model_and_inputs(vertex_max_rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """``model.to(memory_format=torch.channels_last)`` works on a converted network (its copies of a 2-D
    kernel are stacked in 5-D, which torch refuses that format) and, with channels-last inputs, gives the
    contiguous network's outputs and gradients for shared, per-sample and per-pixel ω; per sample, the
    downsampling's 16 patches and the 1×1 convolution on the 4×4 map run through per-sample weights, or
    through the vertex kernels."""
    monkeypatch.setattr(layers_base, "VERTEX_MAX_ROWS", vertex_max_rows)
    torch.manual_seed(0)
    tmodel = spread_copies(tunify.convert(ChannelsLastNet(), 2), scale=0.3)
    channels_last = copy.deepcopy(tmodel).to(memory_format=torch.channels_last)
    x = torch.randn(3, 3, 8, 8)
    for omega in (torch.tensor([0.3, 0.7]), torch.rand(3, 2), torch.rand(3, 2, 8, 8)):
        results = []
        for model, inputs in (
            (tmodel, x),
            (channels_last, x.contiguous(memory_format=torch.channels_last)),
        ):
            model.zero_grad(set_to_none=True)
            y = model(inputs, omega=omega)
            y.square().sum().backward()
            results.append((y.detach(), [t.grad for t in model.parameters()]))
        (y, grads), (y_last, grads_last) = results
        torch.testing.assert_close(y_last, y, atol=1e-5, rtol=1e-5)
        for g_last, g in zip(grads_last, grads, strict=True):
            torch.testing.assert_close(g_last, g, atol=1e-5, rtol=1e-5)


def test_torch_func_transforms_leave_nothing_behind() -> None:
    """``torch.func.grad`` over ``functional_call`` (meta-learning, per-example gradients) gives autograd's
    gradients, and afterwards the network still deep-copies, converts dtype and runs: no tensor wrapped by
    the transform is kept in a layer (the last ω of each layer was, and deepcopy then failed)."""
    torch.manual_seed(0)
    tmodel = spread_copies(tunify.convert(CheckpointedNet().eval(), 2), scale=0.3)
    x, omega = torch.randn(2, 3, 6, 6), torch.tensor([0.3, 0.7])
    params = {name: t.detach() for name, t in tmodel.named_parameters()}

    def loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.func.functional_call(tmodel, p, (x,), {"omega": omega}).square().sum()

    grads = torch.func.grad(loss)(params)
    again = copy.deepcopy(tmodel).to(torch.float64)
    tmodel(x, omega=omega).square().sum().backward()
    for name, t in tmodel.named_parameters():
        torch.testing.assert_close(grads[name], t.grad, msg=name)
    with torch.no_grad():
        torch.testing.assert_close(again(x.double(), omega=omega).float(), tmodel(x, omega=omega))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_torchscript_is_refused_naming_what_works() -> None:
    tmodel = tunify.convert(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 1)), 2)
    with pytest.raises(TypeError, match=r"tunify\.export.*tunify\.bake"):
        torch.jit.script(tmodel)
    torch.jit.script(tunify.bake(tmodel, torch.tensor([0.5, 0.5])))  # the plain network scripts


def test_omega_can_be_optimised() -> None:
    tmodel = tunable_net()
    omega = torch.tensor([0.5, 0.5], requires_grad=True)
    tmodel(torch.randn(2, 3, 8, 8), omega=omega).mean().backward()
    assert omega.grad is not None and omega.grad.abs().sum() > 0


def test_inference_mode() -> None:
    tmodel = tunable_net().eval()
    x, omega = torch.randn(2, 3, 8, 8), torch.rand(2, 2)
    with torch.inference_mode():
        out = tmodel(x, omega=omega)
    torch.testing.assert_close(out, tmodel(x, omega=omega).detach())


@pytest.mark.slow
def test_torch_compile() -> None:
    tmodel = tunable_net().eval()
    # aot_eager traces exactly what inductor would (dynamo + AOT autograd) without its C++ build (~30 s)
    compiled = torch.compile(tmodel, backend="aot_eager")
    x = torch.randn(2, 3, 8, 8)
    for omega in (torch.tensor([0.2, 0.8]), torch.tensor([0.9, 0.1]), torch.rand(2, 2)):
        with torch.no_grad():
            torch.testing.assert_close(compiled(x, omega=omega), tmodel(x, omega=omega), atol=1e-5, rtol=1e-5)


class BreakingNet(nn.Module):
    """Depthwise and strided convolutions around a call dynamo cannot trace (as NAFNet's LayerNorm Function)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.down = nn.Conv2d(8, 3, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        torch._dynamo.graph_break()
        return self.down(self.depthwise(h))


def test_torch_compile_traces_the_whole_call() -> None:
    """Dynamo traces a converted network as one graph (it could not trace the ContextVar that carries ω, so it
    gave up on the call and compiled every layer alone, recompiling per shape), per-sample ω included when no
    layer folds rows (the layout check runs eagerly only for networks that do), so fullgraph=True works."""
    tmodel = tunable_net().eval()
    x = torch.randn(2, 3, 8, 8)
    for omega in (torch.tensor([0.2, 0.8]), torch.rand(2, 2)):
        assert torch._dynamo.explain(copy.deepcopy(tmodel))(x, omega=omega).graph_break_count == 0
        compiled = torch.compile(copy.deepcopy(tmodel), fullgraph=True, backend="aot_eager")
        torch.testing.assert_close(compiled(x, omega=omega), tmodel(x, omega=omega), atol=1e-6, rtol=1e-5)


def test_torch_compile_resumes_after_a_graph_break_in_the_network() -> None:
    torch.manual_seed(0)
    tmodel = spread_copies(tunify.convert(BreakingNet(), 2), scale=0.3)
    compiled = torch.compile(tmodel, backend="aot_eager")
    x = torch.randn(3, 3, 8, 8)
    for omega in (torch.tensor([0.2, 0.8]), torch.rand(3, 2), torch.rand(3, 2, 8, 8)):
        expected = tmodel(x, omega=omega)
        expected_grads = torch.autograd.grad(expected.square().sum(), list(tmodel.parameters()))
        y = compiled(x, omega=omega)
        grads = torch.autograd.grad(y.square().sum(), list(tmodel.parameters()))
        torch.testing.assert_close(y, expected, atol=1e-5, rtol=1e-5)
        for g, e in zip(grads, expected_grads, strict=True):
            torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_torch_compile_inductor_trains_per_sample_with_a_dynamic_batch() -> None:
    """Inductor failed on folded per-sample convolutions (depthwise, strided) once sizes were dynamic:
    compiled per-sample calls run the p kernels and mix their outputs."""
    torch.manual_seed(0)
    tmodel = spread_copies(tunify.convert(BreakingNet(), 2), scale=0.3)
    compiled = torch.compile(tmodel, dynamic=True)
    for batch in (3, 5):
        x, omega = torch.randn(batch, 3, 8, 8), torch.rand(batch, 2)
        y = compiled(x, omega=omega)
        y.square().sum().backward()
        torch.testing.assert_close(y, tmodel(x, omega=omega), atol=1e-5, rtol=1e-5)


def test_threads_do_not_see_each_others_omega() -> None:
    tmodel = tunable_net().eval()
    x = torch.randn(1, 3, 8, 8)
    omegas = [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])]
    expected = [tmodel(x, omega=o).detach() for o in omegas]
    errors: list[float] = []

    def work(i: int) -> None:
        for _ in range(20):
            with torch.no_grad():
                errors.append((tmodel(x, omega=omegas[i]) - expected[i]).abs().max().item())

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(errors) < 1e-6
    with pytest.raises(tunify.MissingOmegaError):
        tmodel.base_model(x)  # nothing is left behind after a call


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_distributed_data_parallel() -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        tmodel = tunable_net()
        x, omega = torch.randn(3, 3, 8, 8), torch.rand(3, 2)
        reference = grads(tmodel, x, omega)
        ddp = nn.parallel.DistributedDataParallel(tmodel)
        ddp.zero_grad()
        ddp(x, omega=omega).square().mean().backward()
        for name, param in ddp.module.named_parameters():
            torch.testing.assert_close(param.grad, reference[name], atol=1e-6, rtol=1e-5)
    finally:
        dist.destroy_process_group()


def test_objectives_separate_into_the_kernels() -> None:
    """Two targets mixed by ω: at ω = (1, 0) the output approaches target 1, at (0, 1) target 2."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 3, 3, padding=1))
    tmodel = tunify.convert(net, 2)
    optimiser = torch.optim.Adam(tmodel.parameters(), lr=3e-3)
    x = torch.rand(16, 3, 12, 12)
    targets = (x, 1.0 - x)  # two incompatible objectives

    def errors() -> list[float]:
        with torch.no_grad():
            return [
                (tmodel(x, omega=torch.tensor(corner)) - target).abs().mean().item()
                for corner, target in zip(([1.0, 0.0], [0.0, 1.0]), targets, strict=True)
            ]

    before = errors()
    for _ in range(300):
        omega = torch.rand(16, 2)
        out = tmodel(x, omega=omega)
        per_sample = [(out - t).abs().mean(dim=(1, 2, 3)) for t in targets]
        loss = (omega[:, 0] * per_sample[0] + omega[:, 1] * per_sample[1]).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    after = errors()
    assert after[0] < 0.5 * before[0] and after[1] < 0.5 * before[1]
    with torch.no_grad():  # each corner is closer to its own target than to the other one
        first = tmodel(x, omega=torch.tensor([1.0, 0.0]))
        assert (first - targets[0]).abs().mean() < 0.5 * (first - targets[1]).abs().mean()


def test_inference_cache_never_serves_stale_kernels() -> None:
    """At a fixed ω without autograd the mixed kernels are reused; any change of ω or weights is seen (writes
    through ``.data`` once ``eval()`` is called)."""
    tmodel = tunable_net().eval()
    x = torch.randn(2, 3, 8, 8)
    omega = torch.tensor([0.3, 0.7])

    def fresh() -> torch.Tensor:
        with torch.enable_grad():
            return tmodel(x, omega=omega.clone()).detach()

    with torch.no_grad():
        first = tmodel(x, omega=omega)
        torch.testing.assert_close(tmodel(x, omega=omega), first)
        omega[0] = 0.9  # in place
        torch.testing.assert_close(tmodel(x, omega=omega), fresh())
    optimiser = torch.optim.SGD(tmodel.parameters(), lr=0.1)
    tmodel(x, omega=torch.rand(2, 2)).square().mean().backward()
    optimiser.step()
    with torch.no_grad():
        torch.testing.assert_close(tmodel(x, omega=omega), fresh())
    with torch.no_grad():
        for t in tmodel.parameters():
            t.data.mul_(0.5)  # an old-style EMA update: no version counter sees it ...
        tmodel.eval()  # ... so eval() (as before a validation pass) drops the cache
        torch.testing.assert_close(tmodel(x, omega=omega), fresh())
        tmodel(x, omega=omega)
        for t in tmodel.parameters():
            t.data.mul_(2.0)
        tmodel.base_model.eval()  # the layers' own eval() drops theirs too, the network's epoch unchanged
        torch.testing.assert_close(tmodel(x, omega=omega), fresh())
    tmodel.double()
    with torch.inference_mode():
        out = tmodel(x.double(), omega=omega)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, tmodel(x.double(), omega=omega.clone()).detach())


def test_autocast_neither_poisons_the_cache_nor_breaks_per_sample_vmap() -> None:
    """Kernels mixed inside autocast are cached in the parameters' dtype, so a later float32 call can use
    them; modules run per sample under vmap (which autocast does not reach) run sample by sample instead."""
    from tests.convert.models import FunctionalNet

    for net in (CheckpointedNet, FunctionalNet):
        torch.manual_seed(0)
        tmodel = spread_copies(tunify.convert(net(), 2), scale=0.5).eval()
        x = torch.randn(2, 3, 8, 8)
        shared, rows = torch.tensor([0.3, 0.7]), torch.rand(2, 2)
        with torch.no_grad():
            expected = [tmodel(x, omega=omega.clone()) for omega in (shared, rows)]
            for omega, reference in zip((shared, rows), expected, strict=True):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    low = tmodel(x, omega=omega)
                torch.testing.assert_close(low.float(), reference, atol=0.05, rtol=0.05)
            again = tmodel(x, omega=shared)  # the ω tensor autocast saw: its cache entry is reused
        assert again.dtype == torch.float32
        torch.testing.assert_close(again, expected[0])


def test_inference_cache_sees_replaced_parameters_and_modules() -> None:
    """Anchoring splits a copy into a new parameter, ``load_state_dict(assign=True)`` swaps them all, and a
    layer's φ can be replaced: each shows in the next call at the same ω."""
    tmodel = spread_copies(tunable_net(), scale=0.5).eval()
    x, omega = torch.randn(2, 3, 8, 8), torch.tensor([0.3, 0.7])

    def fresh() -> torch.Tensor:
        with torch.enable_grad():
            return tmodel(x, omega=omega.clone()).detach()

    with torch.no_grad():
        tmodel(x, omega=omega)
        tunify.anchor(tmodel, 0)
        torch.testing.assert_close(tmodel(x, omega=omega), fresh())
        state = {k: v.clone() * 1.5 if v.is_floating_point() else v for k, v in tmodel.state_dict().items()}
        tmodel.load_state_dict(state, assign=True)
        torch.testing.assert_close(tmodel(x, omega=omega), fresh())
        layer = next(m for m in tmodel.modules() if hasattr(m, "source"))
        layer.phi = torch.nn.Linear(2, 2)
        torch.testing.assert_close(tmodel(x, omega=omega), fresh())


class ScaledNet(nn.Module):
    """A conv followed by a per-channel scale of shape (1, C, 1, 1), NAFNet's β/γ pattern."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.scale = nn.Parameter(torch.rand(1, 4, 1, 1) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * self.scale


def test_a_call_at_the_same_shared_omega_checks_the_cache_once_not_per_layer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Applied again at one shared ω, the layers take their mixed tensors without a check of their own (the
    network checked them all at once); every change still shows, and a layer put in after the network listed
    its layers checks its own cache until ``eval()`` lists them again."""
    from tunify.layers.reader import OmegaReader

    torch.manual_seed(0)
    tmodel = spread_copies(tunify.convert(ScaledNet(), 2, parameters=["scale"]), scale=0.5).eval()
    x, omega = torch.randn(2, 3, 8, 8), torch.tensor([0.2, 0.8])
    checks = []
    cached = OmegaReader.cached
    monkeypatch.setattr(OmegaReader, "cached", lambda self, *a: checks.append(self) or cached(self, *a))

    def fresh() -> torch.Tensor:
        with torch.enable_grad():
            return tmodel(x, omega=omega.clone()).detach()

    def first_copy(layer: nn.Module) -> torch.Tensor:
        return next(iter(layer.source.parameters()))

    with torch.no_grad():
        first = tmodel(x, omega=omega)
        assert len(checks) == 2  # the convolution and the tensor, once each
        checks.clear()
        torch.testing.assert_close(tmodel(x, omega=omega), first, atol=0, rtol=0)
        assert not checks
        first_copy(tmodel.base_model.conv).mul_(1.5)  # in place: a new epoch
        torch.testing.assert_close(tmodel(x, omega=omega), fresh())

        other = spread_copies(tunify.convert(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1)), 2), scale=0.5)
        tmodel.base_model.conv = other.base_model[0]  # not listed by the network yet
        tmodel(x, omega=omega)
        first_copy(tmodel.base_model.conv).mul_(2.0)
        torch.testing.assert_close(tmodel(x, omega=omega), fresh())
        tmodel.eval()  # lists the layers afresh: the new one joins the epochs
        tmodel(x, omega=omega)
        checks.clear()
        tmodel(x, omega=omega)
        assert not checks


def test_the_network_gathers_what_it_checks_once_and_again_after_a_module_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The once-per-call check reads the parameter dicts it gathered on the first call, not the layers; a φ
    put in place of another is counted (``structure_edits``), so the new φ's values and later in-place
    edits of it show."""
    from tunify.layers.base import TunableLayer

    torch.manual_seed(0)
    tmodel = spread_copies(tunify.convert(ScaledNet(), 2, parameters=["scale"]), scale=0.5).eval()
    x, omega, conv = torch.randn(2, 3, 8, 8), torch.tensor([0.2, 0.8]), tmodel.base_model.conv
    asked = []
    watched = TunableLayer.watched
    monkeypatch.setattr(TunableLayer, "watched", lambda self: asked.append(self) or watched(self))

    def fresh() -> torch.Tensor:
        with torch.enable_grad():
            return tmodel(x, omega=omega.clone()).detach()

    with torch.no_grad():
        tmodel(x, omega=omega)
        first = len(asked)
        for _ in range(3):
            tmodel(x, omega=omega)
        assert len(asked) == first
        conv.phi = nn.Linear(2, 2)
        torch.testing.assert_close(tmodel(x, omega=omega), fresh())
        conv.phi.weight.mul_(-2.0)
        torch.testing.assert_close(tmodel(x, omega=omega), fresh())


class NestedOmegaNet(nn.Module):
    """Runs its second convolution at an ω of its own: a user's ``use_omega`` block inside the network."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.inner = torch.tensor([1.0, 0.0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.first(x)
        with tunify.use_omega(self.inner):
            return self.second(h)


def test_a_nested_omega_inside_a_cached_call_is_honoured() -> None:
    torch.manual_seed(0)
    tmodel = spread_copies(tunify.convert(NestedOmegaNet(), 2), scale=0.5).eval()
    net, x, omega = tmodel.base_model, torch.randn(1, 3, 8, 8), torch.tensor([0.5, 0.5])
    with torch.no_grad():
        for inner in ([1.0, 0.0], [0.0, 1.0], [0.3, 0.7]):  # the outer ω stays: one epoch
            net.inner = torch.tensor(inner)
            out = tmodel(x, omega=omega)
            with tunify.use_omega(omega):
                h = net.first(x)
            with tunify.use_omega(net.inner):
                torch.testing.assert_close(out, net.second(h), atol=0, rtol=0)


def test_inference_cache_of_tunable_tensors() -> None:
    """A tunable plain tensor is mixed once per (ω, weights) at inference, and re-mixed when either changes."""
    torch.manual_seed(0)
    tmodel = spread_copies(tunify.convert(ScaledNet(), 2, parameters=["scale"]), scale=0.5).eval()
    module = tmodel.base_model
    x, omega = torch.randn(2, 3, 8, 8), torch.tensor([0.2, 0.8])
    with torch.no_grad():
        with tunify.use_omega(omega):
            assert module.scale is module.scale  # the same mixed tensor while ω and the copies stay
        first = tmodel(x, omega=omega)
        module.parametrizations.scale.original1.mul_(2.0)
        second = tmodel(x, omega=omega)
    with torch.enable_grad():
        expected = tmodel(x, omega=omega.clone()).detach()
    torch.testing.assert_close(second, expected)
    assert not torch.allclose(first, second)
    clone = copy.deepcopy(tmodel)  # the copy's cache watches the copy's tensors, not the original's
    with torch.no_grad():
        clone(x, omega=omega)
        clone.base_model.parametrizations.scale.original0.mul_(3.0)
        moved = clone(x, omega=omega)
    with torch.enable_grad():
        torch.testing.assert_close(moved, clone(x, omega=omega.clone()).detach())


class _Double(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * x


def test_tunable_tensor_reads_follow_parametrize() -> None:
    """Reading a tunable tensor takes a shortcut past parametrize's getter, but gives what parametrize
    gives: under ``parametrize.cached()`` and with a user's parametrisation chained after ours."""
    from torch.nn.utils import parametrize

    torch.manual_seed(0)
    tmodel = spread_copies(tunify.convert(ScaledNet(), 2, parameters=["scale"]), scale=0.5)
    module, omega = tmodel.base_model, torch.tensor([0.2, 0.8])
    copies = module.parametrizations.scale
    expected = 0.2 * copies.original0 + 0.8 * copies.original1  # φ starts as α = ω
    with tunify.use_omega(omega):
        torch.testing.assert_close(module.scale, expected)
        with parametrize.cached():
            assert module.scale is module.scale  # parametrize's own cache answers
            torch.testing.assert_close(module.scale, expected)
        parametrize.register_parametrization(module, "scale", _Double(), unsafe=True)
        torch.testing.assert_close(module.scale, 2 * expected)


class NormedWithTable(nn.Module):
    """BatchNorm, and a tunable table that cannot broadcast over the batch (so per-sample ω runs the network
    one sample at a time)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.table = nn.Parameter(torch.ones(4, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x)) * self.table


def test_per_sample_omega_one_sample_at_a_time_refuses_batchnorm_in_training() -> None:
    tmodel = tunify.convert(NormedWithTable(), 2, parameters=["table"]).train()
    x = torch.randn(4, 3, 8, 8)
    tmodel(x, omega=torch.tensor([0.3, 0.7])).mean().backward()  # one ω per batch: fine
    with pytest.raises(ValueError, match=r"BatchNorm layer 'norm' is in training mode .*per_batch"):
        tmodel(x, omega=torch.rand(4, 2))
    tmodel.eval()
    rows = torch.rand(4, 2)
    with torch.no_grad():
        expected = torch.cat([tmodel(x[i : i + 1], omega=rows[i]) for i in range(4)])
        torch.testing.assert_close(tmodel(x, omega=rows), expected)
