"""The tunable layer: the original module's operation fed by a source of tensors at α = φ(ω).

:class:`TunableLayer` keeps the original module (its hyper-parameters, its non-tunable tensors) and asks its
source for the tunable ones; subclasses (convolutions, Linear, attention, any module) run the operation for
ω shared by the batch, per sample, or per pixel. Reading ω and mapping it through φ is the business of
:class:`~tunify.layers.reader.OmegaReader`, which tunable tensors share.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .bank import KernelBank
from .hooks import take_hooks
from .metadata_only import MetadataOnlyTensor
from .omega import PerSampleRowsError, current_omega, flatten_constant_map, map_mean, omega_form, shared_row
from .reader import OmegaReader, check_kernels, check_p, make_phi
from .source import TensorSource

_is_batched: Callable[[Tensor], bool] = torch._C._functorch.is_batchedtensor
"""Whether ω is a per-sample row under ``torch.func.vmap``."""

SourceFactory = Callable[[nn.Module, dict[str, Tensor], int], TensorSource]
"""``factory(base_layer, tensors, kernels)``: builds a layer's source from its pretrained tensors."""

VERTEX_MAX_ROWS = 16
"""Per-sample ω runs samples of at most this many rows (pixels of a 1×1 convolution's map, tokens of a
Linear) through the vertex weights (:meth:`TunableLayer.uses_vertices`). NAFNet-width32 (SIDD depths) at
64×64, batch 4, p = 2: its per-sample training step 1.51× → 1.44× the plain network's on one CPU thread
(1.26× → 1.21× with one block per level on two threads); at 64 rows it is slower again."""


def get_tensor(module: nn.Module, name: str) -> Tensor | None:
    """``module.<name>`` for a dotted name such as ``out_proj.weight``."""
    owner, _, attr = name.rpartition(".")
    return getattr(module.get_submodule(owner), attr, None)


def parametrization_inputs(module: nn.Module, names: Sequence[str]) -> tuple[str, ...]:
    """``names`` with each tensor that a torch parametrisation computes (``weight_norm``, ``spectral_norm``)
    replaced by the tensors it is computed from: those become tunable, so the module's own forward still
    applies its parametrisation and a baked network keeps it (classes and state-dict keys as the original)."""
    found: list[str] = []
    for name in names:
        owner, _, attr = name.rpartition(".")
        target = module.get_submodule(owner)
        if not parametrize.is_parametrized(target, attr):
            found.append(name)
            continue
        plist = target.parametrizations[attr]
        prefix = f"{owner}.parametrizations.{attr}".lstrip(".")
        found += (
            [f"{prefix}.original"]
            if plist.is_tensor
            else [f"{prefix}.original{i}" for i in range(plist.ntensors)]
        )
    return tuple(found)


def set_parameter(module: nn.Module, name: str, value: Tensor | None) -> None:
    """Register ``value`` (or None, which keeps the slot but drops it from the state dict) under ``name``."""
    owner, _, attr = name.rpartition(".")
    target = module.get_submodule(owner)
    target._parameters[attr] = None if value is None else nn.Parameter(value)


def kernel_bank(base_layer: nn.Module, tensors: dict[str, Tensor], kernels: int) -> TensorSource:
    """The default :data:`SourceFactory`: the paper's p full copies."""
    return KernelBank(tensors, kernels)


class TunableLayer(OmegaReader):
    """Base class of tunable layers: an operation on ``base_layer`` fed by a :class:`TensorSource`.

    The layer keeps the original module as ``base_layer`` (its hyper-parameters and any tensor that is not
    tunable) with the tunable tensors removed; ``source`` produces them from α = φ(ω). Like PEFT's wrapped
    layers it answers for the original: ``layer.weight`` / ``layer.bias`` are tensors (the mixed ones inside a
    call at a shared ω, the source's reference tensor outside a call), hyper-parameters read through, and
    :meth:`get_base_layer` returns the original module. The state dict names the source's tensors under the
    layer (``weight.0``, ``weight.1``, ``phi.weight`` …), the format tunify has always published.

    Protocol for subclasses: ``forward(*args)`` reads ω with :meth:`omega` and asks :func:`omega_form`;
    :meth:`shared_tensors`, :meth:`source` (per sample) and :meth:`vertices` (per pixel) give the tensors.
    """

    tensor_names: tuple[str, ...] = ("weight", "bias")

    def __init__(
        self,
        base_layer: nn.Module,
        p: int,
        tensor_names: tuple[str, ...] | None = None,
        *,
        kernels: int | None = None,
        source: SourceFactory | None = None,
    ) -> None:
        super().__init__()
        check_p(p)
        self.p = p
        self.kernels = check_kernels(p, kernels)
        names = parametrization_inputs(
            base_layer, self.tensor_names if tensor_names is None else tensor_names
        )
        self.tensor_names = tuple(n for n in names if get_tensor(base_layer, n) is not None)
        if not self.tensor_names:
            raise ValueError(
                f"{type(base_layer).__name__} has none of the tensors {list(names)} to make tunable"
            )
        tensors = {name: get_tensor(base_layer, name) for name in self.tensor_names}
        self.phi = make_phi(p, self.kernels, like=next(iter(tensors.values())))
        self.source = (source or kernel_bank)(base_layer, tensors, self.kernels)
        for name in self.tensor_names:
            set_parameter(base_layer, name, None)
        self.base_layer = base_layer
        take_hooks(base_layer, self)
        self._register_state_dict_hook(_flatten_source_keys)
        self._register_load_state_dict_pre_hook(_nest_source_keys, with_module=True)

    def __getattr__(self, name: str) -> Any:
        """Tunable tensors (``weight``, ``bias``) as tensors; hyper-parameters read through to the base layer."""
        modules = self.__dict__.get("_modules", {})
        if name in modules:  # base_layer, source, phi: on every call, so looked up first
            return modules[name]
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name in ("base_layer", "source") or name.startswith("__") or "base_layer" not in self._modules:
                raise  # dunders never read through: copy.deepcopy would copy the base layer alone
            if name in self._modules["source"].names:
                return self.current_tensor(name)
            return getattr(self._modules["base_layer"], name)

    def get_base_layer(self) -> nn.Module:
        """The original module (its tunable tensors live in ``source``)."""
        return self.base_layer

    def current_tensor(self, name: str) -> Tensor:
        """What ``layer.<name>`` reads: the tensor at this call's ω, or the reference tensor outside a call.

        Code that reads a layer's weight inside its own forward (spandrel's SPAN) gets the tensor the layer
        computes with. That cannot vary by sample or pixel: under per-sample ω or a map that varies across the
        image it reads as a :class:`MetadataOnlyTensor`, whose dtype, device and shape are there (timm's
        ``x.to(self.proj.weight.dtype)`` runs as usual) and whose values refuse to be used: per sample, the
        model then runs sample by sample (:class:`~tunify.TunableModel` catches the
        :class:`PerSampleRowsError`); a varying map is refused naming the layer (a constant one is its ω).
        """
        omega = current_omega()
        if omega is None:
            return self.source.reference(name)
        what = f"{type(self.base_layer).__name__}.{name}"
        compiling = torch.compiler.is_compiling()
        form = omega_form(omega)
        # under vmap a map is one sample's, and varies (TunableModel turned constant maps into their ω)
        varying = form == "map" and (_is_batched(omega) or omega_form(flatten_constant_map(omega)) == "map")
        if varying and not compiling:
            return MetadataOnlyTensor.of(
                self.source.reference(name),
                ValueError(
                    f"{what} is read directly in the network's forward, so it cannot vary across the image: "
                    "give this network a shared or per-sample omega, not a map"
                ),
            )
        if form == "map":
            omega = map_mean(omega)
            form = omega_form(omega)
        if form == "per_sample":
            error = PerSampleRowsError(f"{what} is read directly, so it cannot differ per sample")
            if compiling:
                raise error
            return MetadataOnlyTensor.of(self.source.reference(name), error)
        return self.shared_tensors(omega)[name]

    def shared_tensors(self, omega: Tensor) -> dict[str, Tensor]:
        """Every tunable tensor at a shared ω ((p,) or (1, p)), cached at inference (:meth:`cached`)."""
        return self.cached(omega, self.watched, "shared", lambda: self.source(self.alpha(shared_row(omega))))

    def vertices(self) -> tuple[dict[str, Tensor] | None, dict[str, Tensor]]:
        """The source's constant tensors (None if linear) and α-slopes [kernels, *shape], for per-pixel ω."""
        return self.cached(None, self.watched, "vertices", self.source.vertices)

    def uses_vertices(self, batch: int, rows: int) -> bool:
        """Whether per-sample ω with ``rows`` rows per sample runs through the vertices
        (:meth:`per_sample_rows`): one row (a pooled vector); up to :data:`VERTEX_MAX_ROWS` (a U-Net's 4×4
        bottleneck, a few tokens) when there are more samples than kernels to build. Never while tracing or
        compiling, where the choice would fix a dynamic size (the batched products take any)."""
        if torch.compiler.is_compiling():
            return False
        return rows == 1 or (rows <= VERTEX_MAX_ROWS and batch > self.kernels)

    def per_sample_rows(self, x: Tensor, omega: Tensor) -> Tensor:
        """``W_b x_b + b_b`` for each sample's columns (x (B, in, n) → (B, out, n)), through the vertices.

        With few columns per sample, building B weights costs more than the products (B times the weight's
        memory traffic, in batched products that use one core); running every column through each vertex
        weight in one product and mixing the kernels' results does not (the layer is linear in its weight).
        The product is a matmul, which folds the batch into its rows: one GEMM whose weight gradient sums
        over the batch (a 1×1 ``conv1d`` runs one GEMM per sample on the CPU: NAFNet-width32's 4×4 bottleneck
        of 512 channels trained at 1.43× the plain network that way, 1.30× this way).
        """
        constant, slopes = self.vertices()
        weight = slopes["weight"]
        kernels, out = weight.shape[:2]
        b, _, n = x.shape
        y = torch.matmul(weight.reshape(kernels * out, -1), x)  # [B, kernels·out, n]
        alpha = self.alpha(omega).to(y.dtype)  # [B, kernels]
        y = torch.bmm(alpha.unsqueeze(1), y.reshape(b, kernels, out * n)).view(b, out, n)
        if "bias" in slopes:
            y = y + (alpha @ slopes["bias"]).unsqueeze(2)
        if constant is not None:
            y = y + torch.matmul(constant["weight"].reshape(out, -1), x)
            if constant.get("bias") is not None:
                y = y + constant["bias"].unsqueeze(1)
        return y

    def watched(self) -> tuple[dict[str, Any], ...]:
        """The ``_parameters`` dicts of φ and the source's modules, which the inference cache watches. The
        modules are kept while ``phi`` and ``source`` stay; their dicts are read afresh each call, since
        anchoring, ``load_state_dict(assign=True)`` and torch.export replace parameters or whole dicts."""
        phi, source = self._modules["phi"], self._modules["source"]
        owners = self.__dict__.get("_owners")
        if owners is None or owners[0] is not phi or owners[1] is not source:
            owners = self.__dict__["_owners"] = (phi, source, (phi, *source.modules()))
        return tuple(m._parameters for m in owners[2])

    def anchor(self, index: int) -> None:
        super().anchor(index)
        self.source.anchor(index)

    @torch.no_grad()
    def materialize(self, omega: Tensor) -> nn.Module:
        """A plain copy of the base layer with its tensors at a shared ``omega`` of shape (p,).

        Mixed in at least float32 whatever the layer's dtype (:func:`mixing_dtype`), then cast back to each
        tensor's dtype.
        """
        plain = copy.deepcopy(self.base_layer)
        take_hooks(self, plain, share=False)
        alpha = self.alpha_exact(omega)
        source = copy.deepcopy(self.source).to(alpha.dtype)
        values = source(alpha)
        for name, value in values.items():
            dtype = self.source.reference(name).dtype
            set_parameter(plain, name, value.to(dtype).clone())
        return plain

    def extra_repr(self) -> str:
        kernels = f", kernels={self.kernels}" if self.kernels != self.p else ""
        return f"p={self.p}{kernels}, tunable={list(self.tensor_names)}"


_SOURCE = "source."


def _flatten_source_keys(module: TunableLayer, state: dict[str, Any], prefix: str, _meta: Any) -> None:
    """State-dict hook: the source's entries sit directly under the layer (``conv.weight.0``)."""
    for key in [k for k in state if k.startswith(prefix + _SOURCE)]:
        state[prefix + key[len(prefix + _SOURCE) :]] = state.pop(key)


def _nest_source_keys(module: TunableLayer, state: dict[str, Any], prefix: str, *_: Any) -> None:
    """Load pre-hook: the inverse of :func:`_flatten_source_keys`."""
    own = ("base_layer.", "phi.", _SOURCE)
    for key in [k for k in state if k.startswith(prefix)]:
        rest = key[len(prefix) :]
        if not rest.startswith(own) and "." in rest:
            state[prefix + _SOURCE + rest] = state.pop(key)


class LayerContainer(nn.Module):
    """A container a control strategy builds around a tunable layer (AdaFM: the convolution, then its
    filter). :func:`tunify.bake` puts :meth:`plain` in its place and bakes the layers inside."""

    def plain(self) -> nn.Module:
        raise NotImplementedError
