from __future__ import annotations

import pytest
import torch

from tunify.objectives import (
    FunctionSampler,
    PerBatchSampler,
    SimplexSampler,
    VertexMixSampler,
    build_sampler,
    sampler_names,
)

BUILTIN = [
    ("uniform", {}),
    ("simplex", {}),
    ("simplex", {"concentration": 0.3}),
    ("corner_biased", {}),
    ("vertex_mix", {}),
    ("vertex_mix", {"vertex_prob": 0.3, "vertex_weights": [0, 1, 2], "base": "uniform"}),
    ("per_batch", {}),
    ("per_batch", {"base": "simplex", "base_kwargs": {"concentration": 2.0}}),
]


def triangle(batch_size, generator, device):
    """A user ω distribution: ω₁ ~ U[0, 1], ω₂ = 1 − ω₁."""
    w = torch.rand(batch_size, 1, generator=generator)
    return torch.cat([w, 1 - w], 1)


@pytest.mark.parametrize(("name", "kwargs"), BUILTIN)
def test_shape_range_and_reproducibility(name, kwargs):
    sampler = build_sampler(name, p=3, **kwargs)
    a = sampler(64, generator=torch.Generator().manual_seed(7))
    b = sampler(64, generator=torch.Generator().manual_seed(7))
    c = sampler(64, generator=torch.Generator().manual_seed(8))
    assert a.shape == (64, 3) and a.dtype == torch.float32
    assert a.min() >= 0 and a.max() <= 1
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    assert sampler(2, device="cpu").device.type == "cpu"


def test_uniform_covers_the_cube():
    omega = build_sampler("uniform", p=2)(4000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(omega.mean(0), torch.full((2,), 0.5), atol=0.03, rtol=0)
    assert not torch.equal(omega[0], omega[1])


@pytest.mark.parametrize("concentration", [1.0, 0.3])
def test_simplex_sums_to_one(concentration):
    omega = SimplexSampler(4, concentration=concentration)(100, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(omega.sum(1), torch.ones(100))


def test_corner_biased_extremes():
    g = torch.Generator().manual_seed(2)
    corners = build_sampler("corner_biased", p=3, corner_prob=1.0, simplex_prob=0.0)(200, generator=g)
    assert set(corners.unique().tolist()) == {0.0, 1.0}
    edge = build_sampler("corner_biased", p=2, corner_prob=0.0, simplex_prob=1.0)(200, generator=g)
    torch.testing.assert_close(edge[:, 1], 1 - edge[:, 0])
    mixed = build_sampler("corner_biased", p=2)(2000, generator=g)
    corner_share = ((mixed == 0) | (mixed == 1)).all(1).float().mean()
    assert 0.18 < corner_share < 0.32


def test_vertex_mix_draws_weighted_vertices_and_the_base():
    g = torch.Generator().manual_seed(5)
    only_e1 = build_sampler("vertex_mix", p=3, vertex_prob=1.0, vertex_weights=[0, 1, 0])(50, generator=g)
    torch.testing.assert_close(only_e1, torch.tensor([0.0, 1.0, 0.0]).expand(50, -1))
    line = VertexMixSampler(2)(4000, generator=g)
    torch.testing.assert_close(line.sum(1), torch.ones(4000))  # vertices and base draws are on the line
    at_vertex = (line == 1).any(1)
    assert 0.47 < at_vertex.float().mean() < 0.53
    assert 0.4 < line[at_vertex, 1].mean() < 0.6  # both vertices, equally often by default
    skewed = VertexMixSampler(2, vertex_prob=1.0, vertex_weights=[1, 3])(4000, generator=g)
    assert 0.72 < skewed[:, 1].mean() < 0.78
    assert VertexMixSampler(2, vertex_prob=0.0)(200, generator=g).lt(1).all()  # base only (no exact vertex)


def test_per_batch_shares_one_omega():
    omega = PerBatchSampler(2)(5, generator=torch.Generator().manual_seed(3))
    assert (omega == omega[0]).all()
    with pytest.raises(ValueError, match="base sampler has p=3"):
        PerBatchSampler(2, base=SimplexSampler(3))


def test_function_sampler_callable_and_import_path():
    g = torch.Generator().manual_seed(4)
    omega = FunctionSampler(2, fn=triangle)(6, generator=g)
    torch.testing.assert_close(omega.sum(1), torch.ones(6))
    by_path = build_sampler("function", p=2, fn=f"{__name__}:triangle")
    torch.testing.assert_close(by_path(6, torch.Generator().manual_seed(4)), omega)
    with pytest.raises(ValueError, match=r"\(6, 3\)"):
        FunctionSampler(3, fn=triangle)(6)
    with pytest.raises(ValueError, match="module:function"):
        FunctionSampler(2, fn="no_colon")


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="unknown omega sampler 'gaussian'"):
        build_sampler("gaussian", p=2)
    with pytest.raises(ValueError, match="p must be"):
        build_sampler("uniform", p=0)
    with pytest.raises(ValueError, match="batch_size"):
        build_sampler("uniform", p=2)(0)
    with pytest.raises(ValueError, match="concentration"):
        SimplexSampler(2, concentration=0.0)
    with pytest.raises(ValueError, match="corner_prob"):
        build_sampler("corner_biased", p=2, corner_prob=0.8, simplex_prob=0.5)
    with pytest.raises(ValueError, match="vertex_prob"):
        VertexMixSampler(2, vertex_prob=1.5)
    with pytest.raises(ValueError, match="vertex_weights must be 2 non-negative"):
        VertexMixSampler(2, vertex_weights=[1, -1])
    with pytest.raises(ValueError, match="vertex_weights must be 3"):
        VertexMixSampler(3, vertex_weights=[0, 0, 0])
    with pytest.raises(ValueError, match="base sampler has p=3"):
        VertexMixSampler(2, base=SimplexSampler(3))
    assert set(sampler_names()) == {
        "uniform",
        "simplex",
        "corner_biased",
        "vertex_mix",
        "per_batch",
        "function",
    }
