"""How ω is drawn during training with the parametric multi-loss (Maggioni et al., CVPR 2023, Sec. 3.2).

Which sampler to use:

- ``uniform`` (default): ω ~ U[0, 1]^p independently per sample. Covers the whole cube, suits independent
  parameters (e.g. joint noise+blur strengths) and gives low-variance gradients across the ω range.
- ``vertex_mix``: with probability ``vertex_prob`` a vertex e_i of the simplex (a pure objective; which one
  by ``vertex_weights``), otherwise a draw of ``base`` (default: uniform on the simplex). Use it when the ends
  of a line ω₂ = 1 − ω₁ must match networks trained for one objective alone: a Dirichlet draw lands near a
  vertex too rarely for the copy that has to travel furthest from the pretrained weights. With
  ``tunify.anchor(model, 0)`` copy 0 cannot learn, so give vertex 0 no weight (``vertex_weights=[0, 1]``).
  Measured (benchmarks/results/denoise_tradeoff_experiments.md, anchored CDnCNN-B, 100 steps at lr 1e-4):
  ``vertex_prob=0.5, vertex_weights=[0, 1]`` reached PSNR_η 45.1 dB at ω = (0, 1), as the fixed network
  trained only there (45.1 dB), where ``simplex`` 0.5 reached 41.8 dB; intermediate ω keep less noise-free
  detail in exchange (PSNR_η at ω = (½, ½) 33.8 instead of 36.5 dB).
- ``per_batch``: one ω (from any base sampler) shared by the whole batch, as in the paper. Tunable layers
  can then mix kernels once per batch (cheaper), at the cost of noisier gradients across ω.
- ``simplex``: ω ~ Dirichlet(α) on the simplex Σω = 1, for models whose parameters interpolate between
  objectives (the paper's NAFNet/SwinIR/StyleNet settings). α < 1 pushes draws towards the vertices.
  Measured (benchmarks/README.md, CDnCNN-B, reconstruction + noise preservation evaluated at ω2 = 1 − ω1):
  ``simplex`` with α = 0.5 instead of ``uniform`` cut the loss at ω = (1, 0) against a fixed network from
  1.06 to 0.42 dB and made PSNR monotone in ω1; evaluate where you train.
- ``corner_biased``: mostly uniform on the cube, but with some probability a corner of {0, 1}^p or a point on
  the simplex (for p = 2, the edge ω₂ = 1 − ω₁). Uniform sampling almost never visits the corners and that
  edge, which is exactly where users evaluate, so this improves the endpoints.
- ``function``: any user function ``fn(batch_size, generator, device) -> Tensor[B, p]``.

All samplers are called as ``sampler(batch_size, generator=None, device=None) -> Tensor[B, p]`` and are
reproducible given a ``torch.Generator``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ._registry import Registry

SAMPLERS: Registry[OmegaSampler] = Registry("omega sampler")
SampleFn = Callable[..., Tensor]


def _rand(shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else None
    return torch.rand(shape, generator=generator, device=device)


def _dirichlet(batch_size: int, p: int, concentration: float, generator: torch.Generator | None) -> Tensor:
    """Dirichlet(α·1_p) draws; Gamma sampling takes no generator, so seed a forked RNG from it."""
    if concentration == 1.0:  # uniform on the simplex: normalised exponentials
        e = -torch.log1p(-_rand((batch_size, p), generator))
        return e / e.sum(1, keepdim=True)
    gamma = torch.distributions.Gamma(torch.full((p,), float(concentration)), torch.ones(p))
    if generator is None:
        g = gamma.sample((batch_size,))
    else:
        seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            g = gamma.sample((batch_size,))
    return g / g.sum(1, keepdim=True).clamp_min(torch.finfo(g.dtype).tiny)


class OmegaSampler:
    """Base class: subclasses implement ``_sample(batch_size, generator) -> Tensor[B, p]``."""

    def __init__(self, p: int) -> None:
        if not isinstance(p, int) or p < 1:
            raise ValueError(f"p must be a positive integer, got {p!r}")
        self.p = p

    def __call__(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        omega = self._sample(batch_size, generator)
        return omega if device is None else omega.to(device)

    def _sample(self, batch_size: int, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


@SAMPLERS.register("uniform")
class UniformSampler(OmegaSampler):
    """ω ~ U[0, 1]^p independently per sample (the default)."""

    def _sample(self, batch_size: int, generator: torch.Generator | None) -> Tensor:
        return _rand((batch_size, self.p), generator)


@SAMPLERS.register("simplex")
class SimplexSampler(OmegaSampler):
    """ω ~ Dirichlet(α) per sample, so Σω = 1; α < 1 favours the vertices, α > 1 the centre."""

    def __init__(self, p: int, *, concentration: float = 1.0) -> None:
        super().__init__(p)
        if concentration <= 0:
            raise ValueError(f"concentration must be > 0, got {concentration}")
        self.concentration = float(concentration)

    def _sample(self, batch_size: int, generator: torch.Generator | None) -> Tensor:
        return _dirichlet(batch_size, self.p, self.concentration, generator)

    def __repr__(self) -> str:
        return f"SimplexSampler(p={self.p}, concentration={self.concentration})"


@SAMPLERS.register("corner_biased")
class CornerBiasedSampler(OmegaSampler):
    """Per sample: a corner of {0, 1}^p with ``corner_prob``, a uniform simplex point (p = 2: ω₂ = 1 − ω₁)
    with ``simplex_prob``, otherwise uniform on the cube."""

    def __init__(self, p: int, *, corner_prob: float = 0.25, simplex_prob: float = 0.25) -> None:
        super().__init__(p)
        if corner_prob < 0 or simplex_prob < 0 or corner_prob + simplex_prob > 1:
            raise ValueError(
                f"corner_prob and simplex_prob must be >= 0 with sum <= 1, got {corner_prob}, {simplex_prob}"
            )
        self.corner_prob, self.simplex_prob = corner_prob, simplex_prob

    def _sample(self, batch_size: int, generator: torch.Generator | None) -> Tensor:
        shape = (batch_size, self.p)
        choice = _rand((batch_size, 1), generator)  # [B, 1]
        corners = (_rand(shape, generator) < 0.5).float()
        simplex = _dirichlet(batch_size, self.p, 1.0, generator)
        cube = _rand(shape, generator)
        is_corner = choice < self.corner_prob
        is_simplex = (choice >= self.corner_prob) & (choice < self.corner_prob + self.simplex_prob)
        return torch.where(is_corner, corners, torch.where(is_simplex, simplex, cube))

    def __repr__(self) -> str:
        return f"CornerBiasedSampler(p={self.p}, corner_prob={self.corner_prob}, simplex_prob={self.simplex_prob})"


@SAMPLERS.register("vertex_mix")
class VertexMixSampler(OmegaSampler):
    """Per sample: a simplex vertex e_i with ``vertex_prob`` (i drawn with ``vertex_weights``, default
    uniform), otherwise a draw of ``base`` (a sampler or registered name, default uniform on the simplex)."""

    def __init__(
        self,
        p: int,
        *,
        vertex_prob: float = 0.5,
        vertex_weights: Sequence[float] | None = None,
        base: OmegaSampler | str = "simplex",
        base_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(p)
        if not 0.0 <= vertex_prob <= 1.0:
            raise ValueError(f"vertex_prob must be in [0, 1], got {vertex_prob}")
        weights = [1.0] * p if vertex_weights is None else [float(w) for w in vertex_weights]
        if len(weights) != p or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(
                f"vertex_weights must be {p} non-negative numbers with a positive sum, got {vertex_weights!r}"
            )
        self.vertex_prob = float(vertex_prob)
        self.vertex_weights = torch.tensor(weights) / sum(weights)
        self.base = build_sampler(base, p=p, **(base_kwargs or {})) if isinstance(base, str) else base
        if self.base.p != p:
            raise ValueError(f"base sampler has p={self.base.p}, expected {p}")

    def _sample(self, batch_size: int, generator: torch.Generator | None) -> Tensor:
        choice = _rand((batch_size, 1), generator)
        cumulative = self.vertex_weights.cumsum(0)
        cumulative[-1] = 1.0  # no index past the end from rounding
        u = _rand((batch_size,), generator)
        index = torch.searchsorted(cumulative.to(u.device), u, right=True)
        vertices = torch.nn.functional.one_hot(index, self.p).float()
        drawn = self.base(batch_size, generator).to(vertices.device)
        return torch.where(choice < self.vertex_prob, vertices, drawn)

    def __repr__(self) -> str:
        weights = [round(w, 4) for w in self.vertex_weights.tolist()]
        return (
            f"VertexMixSampler(p={self.p}, vertex_prob={self.vertex_prob}, vertex_weights={weights}, "
            f"base={self.base!r})"
        )


@SAMPLERS.register("per_batch")
class PerBatchSampler(OmegaSampler):
    """One ω from ``base`` (a sampler or registered name), repeated over the batch — the paper's scheme."""

    def __init__(
        self, p: int, *, base: OmegaSampler | str = "uniform", base_kwargs: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(p)
        self.base = build_sampler(base, p=p, **(base_kwargs or {})) if isinstance(base, str) else base
        if self.base.p != p:
            raise ValueError(f"base sampler has p={self.base.p}, expected {p}")

    def _sample(self, batch_size: int, generator: torch.Generator | None) -> Tensor:
        return self.base(1, generator).expand(batch_size, -1).clone()

    def __repr__(self) -> str:
        return f"PerBatchSampler(p={self.p}, base={self.base!r})"


@SAMPLERS.register("function")
class FunctionSampler(OmegaSampler):
    """Wraps ``fn(batch_size, generator, device) -> Tensor[B, p]``; ``fn`` may be ``"module:function"``
    so YAML configs can name it. The result's shape is checked."""

    def __init__(self, p: int, *, fn: SampleFn | str) -> None:
        super().__init__(p)
        self.fn = _import_function(fn) if isinstance(fn, str) else fn
        if not callable(self.fn):
            raise ValueError(f"fn must be callable or 'module:function', got {fn!r}")

    def __call__(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        omega = self.fn(batch_size, generator, device)
        if (
            not isinstance(omega, Tensor)
            or omega.shape != (batch_size, self.p)
            or not omega.is_floating_point()
        ):
            got = tuple(omega.shape) if isinstance(omega, Tensor) else type(omega).__name__
            raise ValueError(
                f"sampler function must return a float tensor ({batch_size}, {self.p}), got {got}"
            )
        return omega if device is None else omega.to(device)


def _import_function(path: str) -> SampleFn:
    module, sep, attr = path.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"function sampler path must look like 'package.module:function', got {path!r}")
    return getattr(importlib.import_module(module), attr)


def build_sampler(name: str, *, p: int, **kwargs: Any) -> OmegaSampler:
    """Instantiate the sampler registered as ``name``, e.g. ``build_sampler("uniform", p=2)``."""
    return SAMPLERS.get(name)(p, **kwargs)


def sampler_names() -> list[str]:
    return SAMPLERS.names()
