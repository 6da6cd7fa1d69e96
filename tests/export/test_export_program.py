"""torch.export of converted networks (ω a second input), the .pt2 file, the metadata, and bad input."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from export_testdata import OMEGAS, P, inputs, tiny
from torch import nn

import tunify
from tests.conftest import spread_copies
from tests.layers.test_spatial import Tokens, Windows, tunable
from tunify.export import MissingDependencyError, OmegaInput, export_metadata, export_program
from tunify.export.compat import _swinir_window_reverse
from tunify.export.program import example_input


@pytest.fixture(scope="module")
def dncnn() -> tunify.TunableModel:
    return tiny("dncnn")


# Tunable layers remember the ω of their last call (gradient checkpointing); torch.export notes it.
@pytest.mark.filterwarnings("ignore:The tensor attribute.*assigned during export:UserWarning")
def test_torch_export_of_the_documented_wrapper(dncnn: tunify.TunableModel) -> None:
    """OmegaInput + plain torch.export.export: the layers' value checks step aside while tracing."""
    dncnn.train()
    remembered = {n: m.__dict__.get("_last_omega") for n, m in dncnn.named_modules()}
    program = export_program(dncnn)
    assert dncnn.training  # the trace ran in eval mode and put the mode back
    assert {n: m.__dict__.get("_last_omega") for n, m in dncnn.named_modules()} == remembered
    dncnn.eval()
    for size in [(1, 16, 16), (3, 21, 27)]:
        x = inputs(size)
        for values in (OMEGAS[0], OMEGAS[3]):
            omega = torch.tensor(values)
            with torch.no_grad():
                torch.testing.assert_close(
                    program.module()(x, omega), dncnn(x, omega=omega), atol=1e-5, rtol=0
                )
    # the same with the public torch API directly, as the docstring shows
    x, omega = inputs((2, 20, 20)), torch.tensor(OMEGAS[2])
    dims = {"x": {0: torch.export.Dim.AUTO, 2: torch.export.Dim.AUTO}, "omega": None}
    direct = torch.export.export(OmegaInput(dncnn), (x, omega), dynamic_shapes=dims)
    with torch.no_grad():
        torch.testing.assert_close(direct.module()(x, omega), dncnn(x, omega=omega))


def test_pt2_file_round_trip_carries_the_metadata(dncnn: tunify.TunableModel, tmp_path: Path) -> None:
    path = tunify.export(dncnn, tmp_path / "model.pt2")
    extra = {"tunify.json": ""}
    program = torch.export.load(path, extra_files=extra)
    meta = json.loads(extra["tunify.json"])
    assert meta["tunify.p"] == str(P) and meta["tunify.mix"] == "weights"
    x, omega = inputs((2, 19, 23)), torch.tensor(OMEGAS[1])
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x, omega), dncnn(x, omega=omega), atol=1e-5, rtol=0)
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left nothing behind


def test_metadata_semantics_follow_the_conversion() -> None:
    independent = tiny("dncnn", independent=True, allow_extrapolation=True)
    meta = export_metadata(independent, baked=None, mix="outputs", spatial=True)
    assert meta["tunify.omega.semantics"] == "independent"
    assert meta["tunify.omega.range"] == "unbounded"
    assert json.loads(meta["tunify.omega.shape"]) == ["batch", P, "height", "width"]
    assert json.loads(meta["tunify.omega.default"]) == [0.5, 0.5]
    independent.info = {}  # nothing documented: every ω entry still listed, and said to be undocumented
    objectives = json.loads(
        export_metadata(independent, baked=None, mix="weights", spatial=False)["tunify.objectives"]
    )
    assert [o["description"] for o in objectives] == ["not documented"] * P


def test_tunify_export_is_the_function_and_the_package() -> None:
    assert callable(tunify.export)
    assert tunify.export.OmegaInput is OmegaInput


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": "model.tflite"}, "use a .onnx or .pt2 suffix"),
        ({"mix": "kernels"}, "mix must be one of"),
        ({"spatial": True}, "spatial=True needs mix='outputs'"),
        ({"omega": [0.5, 0.5], "mix": "outputs"}, "a baked export"),
        ({"omega": [0.5, 0.5, 0.5]}, "omega has shape"),
    ],
)
def test_bad_arguments_are_named(
    dncnn: tunify.TunableModel, tmp_path: Path, kwargs: dict, message: str
) -> None:
    path = tmp_path / kwargs.pop("path", "model.pt2")
    with pytest.raises(ValueError, match=message):
        tunify.export(dncnn, path, **kwargs)
    assert not path.exists()


def test_plain_network_and_channel_less_network_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="needs a TunableModel"):
        tunify.export(nn.Conv2d(3, 3, 1), tmp_path / "m.pt2")
    linear = tunify.convert(nn.Sequential(nn.Linear(4, 4)), p=P)
    with pytest.raises(ValueError, match="pass example="):
        tunify.export(linear, tmp_path / "m.pt2")
    path = tunify.export(linear, tmp_path / "m.pt2", example=torch.rand(2, 4))
    x, omega = torch.rand(3, 4), torch.tensor(OMEGAS[4])
    with torch.no_grad():
        torch.testing.assert_close(torch.export.load(path).module()(x, omega), linear(x, omega=omega))


def test_missing_onnx_is_one_line_naming_the_pip_command(
    dncnn: tunify.TunableModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else find_spec(name, *a)
    )
    with pytest.raises(
        MissingDependencyError, match=r"^ONNX export needs onnxscript: pip install 'tunify\[export\]'$"
    ):
        tunify.export(dncnn, tmp_path / "model.onnx")


def test_swinir_window_reverse_stand_in_is_exact() -> None:
    from spandrel.architectures.SwinIR.__arch.SwinIR import window_partition, window_reverse

    x = torch.rand(3, 8, 12, 5)
    windows = window_partition(x, 4)
    torch.testing.assert_close(_swinir_window_reverse(windows, 4, 8, 12), window_reverse(windows, 4, 8, 12))
    torch.testing.assert_close(_swinir_window_reverse(windows, 4, 8, 12), x)


class _WidthBranch(nn.Module):
    """A network whose own code branches on the input width (as SwinIR does on its training size), its input
    not called ``x`` (NAFNet's is ``inp``)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        y = self.conv(inp)
        return y * 2 if inp.shape[-1] == 61 else y


def test_a_size_the_network_fixes_is_named_in_a_warning(tmp_path: Path) -> None:
    tmodel = tunify.convert(_WidthBranch(), p=P).eval()
    with pytest.warns(UserWarning, match=r"fixes x dim 3 = 61 in the exported graph"):
        path = tunify.export(tmodel, tmp_path / "m.pt2")
    x, omega = torch.rand(3, 3, 20, 61), torch.tensor(OMEGAS[1])
    with torch.no_grad():
        torch.testing.assert_close(torch.export.load(path).module()(x, omega), tmodel(x, omega=omega))
    with pytest.warns(UserWarning, match=r"fixes x dim 3 = 61 in the exported graph"):
        baked = tunify.export(tmodel, tmp_path / "baked.pt2", omega=OMEGAS[1])
    with torch.no_grad():
        torch.testing.assert_close(torch.export.load(baked).module()(x), tmodel(x, omega=omega))


class _PerBatchBias(nn.Module):
    """A bias computed once per batch from a table without a batch dimension (DAT's position-bias MLP):
    per-sample ω runs such a network one sample at a time."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.mlp = nn.Linear(2, 3)
        self.register_buffer("table", torch.rand(5, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.mlp(self.table).mean(0)[:, None, None]


def test_per_sample_export_of_a_network_that_runs_a_layer_once_per_batch() -> None:
    torch.manual_seed(0)
    tmodel = spread_copies(tunify.convert(_PerBatchBias(), p=P), scale=0.5).eval()
    x, omega = torch.rand(2, 3, 9, 8), torch.rand(2, P)
    with pytest.warns(UserWarning, match=r"fixes x dim 0 = 2, omega dim 0 = 2"):  # one sample at a time
        program = export_program(tmodel, mix="outputs", example=x)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x, omega), tmodel(x, omega=omega))


def test_a_model_exported_with_live_omega_can_be_copied_baked_and_exported_again(tmp_path: Path) -> None:
    """The inference cache kept the ``_parameters`` dicts it watches; torch.export replaces them and fills
    the old ones with fake tensors, so a later bake (deep copy) of a network with a TunableModule (a
    weight_norm'd convolution here) failed: 'Cannot access data pointer of Tensor (e.g. FakeTensor …)'."""
    import copy

    torch.manual_seed(0)
    norm = nn.utils.parametrizations.weight_norm
    net = nn.Sequential(norm(nn.Conv2d(3, 8, 3, padding=1)), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
    tmodel = spread_copies(tunify.convert(net.eval(), P), scale=0.5)
    export_program(tmodel, mix="outputs")
    copy.deepcopy(tmodel)
    program = export_program(tmodel, omega=torch.tensor(OMEGAS[0]))
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(
            program.module()(x), tmodel(x, omega=torch.tensor(OMEGAS[0])), atol=1e-5, rtol=1e-4
        )


class _FixedSize(nn.Module):
    """A network that takes one input size only (a ViT's patch embedding), stating it as timm does when
    ``img_size`` is set."""

    def __init__(self, img_size: int | None) -> None:
        super().__init__()
        if img_size is not None:
            self.img_size = img_size
        self.conv = nn.Conv2d(3, 4, 4, stride=4)
        self.head = nn.Linear(4 * 4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-2:] == (16, 16), f"Input size {tuple(x.shape[-2:])} doesn't match model (16, 16)"
        return self.head(self.conv(x).mean(1).flatten(1))


def test_a_network_of_one_input_size_is_traced_at_the_size_it_states(tmp_path: Path) -> None:
    tmodel = spread_copies(tunify.convert(_FixedSize(16), p=P)).eval()
    with pytest.warns(UserWarning, match=r"fixes x dim 2 = 16, x dim 3 = 16"):
        path = tunify.export(tmodel, tmp_path / "m.pt2")
    x, omega = torch.rand(3, 3, 16, 16), torch.tensor(OMEGAS[2])
    with torch.no_grad():
        torch.testing.assert_close(torch.export.load(path).module()(x, omega), tmodel(x, omega=omega))


def test_a_network_that_runs_on_no_example_names_the_sizes_and_its_error(tmp_path: Path) -> None:
    tmodel = tunify.convert(_FixedSize(None), p=P)
    message = (
        r"runs on none of the example inputs tried \(\(1, 3, 67, 61\)\).*doesn't match model.*--size H,W"
    )
    with pytest.raises(ValueError, match=message):
        tunify.export(tmodel, tmp_path / "m.pt2")
    assert not (tmp_path / "m.pt2").exists()
    path = tunify.export(tmodel, tmp_path / "m.pt2", example=torch.rand(2, 3, 16, 16))
    assert path.exists()


def test_the_example_input_is_made_where_the_network_is() -> None:
    """A network on a GPU is probed there ("meta" stands in: its convolutions run on shapes alone)."""
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
    x = example_input(tunify.convert(net, p=P).to("meta"))
    assert x.device == torch.device("meta") and x.shape == (2, 3, 67, 61)


@pytest.mark.parametrize(
    ("make", "size"),
    [
        (lambda: Tokens("raster"), (9, 7)),
        (lambda: Tokens("channels_last"), (9, 7)),
        (lambda: Windows(4, 2), (8, 12)),
    ],
    ids=["raster", "channels_last", "windows"],
)
def test_spatial_program_follows_the_map_in_linear_layers_on_tokens(make, size, tmp_path: Path) -> None:
    """The exported graph takes the per-token path too (traced at another size than it runs at)."""
    tmodel = tunable(make())
    example = inputs((2, 12, 16))  # the windows need multiples of 4 (SwinIR pads to them)
    path = tunify.export(tmodel, tmp_path / "tokens.pt2", mix="outputs", spatial=True, example=example)
    program = torch.export.load(path)
    x, omega = inputs((2, *size)), torch.rand(2, P, *size)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x, omega), tmodel(x, omega=omega), atol=1e-5, rtol=0)
        assert not torch.allclose(tmodel(x, omega=omega), tmodel(x, omega=omega.mean((2, 3))), atol=1e-3)


def test_per_sample_program_of_a_windowed_block(tmp_path: Path) -> None:
    """mix="outputs" runs per-sample ω as a 1×1 map, which the Linear layers of windows broadcast."""
    tmodel = tunable(Windows(4, 2))
    path = tunify.export(tmodel, tmp_path / "w.pt2", mix="outputs", example=inputs((2, 12, 16)))
    x, omega = inputs((3, 8, 12)), torch.rand(3, P)
    with torch.no_grad():
        expected = tmodel(x, omega=omega)
        torch.testing.assert_close(torch.export.load(path).module()(x, omega), expected, atol=1e-5, rtol=0)
