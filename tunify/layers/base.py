"""The common machinery of tunable layers: the affine map φ, reading ω, and the layer/source split.

Initialisation (the choice tunify makes): a source starts at the pretrained tensors for every α that sums to
one, and φ starts as α = ω − mean(ω) + 1/p, i.e. weight ``I − 1/p`` and bias ``1/p``. The α always sum to
one, so a freshly converted layer computes exactly the pretrained layer for every ω, and yet α_i moves with
ω_i, so the gradient of an objective weighted by ω_i reaches the i-th copy most strongly from the first step.

That map is made for ω on the simplex (Σω = 1, the paper's trade-offs): it sends ω and ω + c·1 to the same α,
so it cannot tell apart the corners (0, 0) and (1, 1) of independent knobs. For those (``independent=True``)
a source takes p + 1 entries, a base one and one per ω entry, and φ starts as α = (ω_1, …, ω_p, 1 − Σω):
still summing to one, and a different network at every corner of [0, 1]^p.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.utils._pytree import tree_flatten

from .bank import KernelBank
from .omega import (
    MissingOmegaError,
    PerSampleRowsError,
    current_omega,
    flatten_constant_map,
    in_backward,
    map_mean,
    omega_form,
    shared_row,
)
from .source import TensorSource, without_autocast

T = TypeVar("T")

SourceFactory = Callable[[nn.Module, dict[str, Tensor], int], TensorSource]
"""``factory(base_layer, tensors, kernels)``: builds a layer's source from its pretrained tensors."""

VERTEX_MAX_ROWS = 16
"""Per-sample ω runs samples of at most this many rows (pixels of a 1×1 convolution's map, tokens of a
Linear) through the vertex weights (:meth:`TunableLayer.uses_vertices`). Measured on NAFNet-width32 at
64×64 (a 4×4 bottleneck of 512 channels), batch 4, p = 2: its per-sample training step 2.00× → 1.63× the
plain network's on 2 CPU threads; on one thread per-sample weights stay faster (1.42× against 1.53×)."""


def check_p(p: int) -> None:
    if not isinstance(p, int) or isinstance(p, bool) or p < 1:
        raise ValueError(f"p (the number of tunable parameters) must be an integer >= 1, got {p!r}")


def check_kernels(p: int, kernels: int | None) -> int:
    """The length of α: p (ω on the simplex) or p + 1 (independent ω entries)."""
    kernels = p if kernels is None else kernels
    if kernels not in (p, p + 1):
        raise ValueError(f"kernels must be p ({p}) or p + 1 ({p + 1}), got {kernels!r}")
    return kernels


def mixing_dtype(dtype: torch.dtype) -> torch.dtype:
    """The precision kernels are mixed in when exactness matters (φ, baking): at least float32, so a
    half-precision sum of p kernels keeps its digits and a float64 network stays float64."""
    return torch.promote_types(dtype, torch.float32)


def make_phi(p: int, kernels: int | None = None, like: Tensor | None = None) -> nn.Linear:
    """φ: ℝ^p → ℝ^kernels, affine, with Σα = 1 for every ω (see the module docstring).

    ``kernels = p``: α = ω − mean(ω) + 1/p. ``kernels = p + 1``: α = (ω, 1 − Σω), the last entry the base.
    ``like``: the tensor φ will feed, whose device it takes, in :func:`mixing_dtype` of its dtype.
    """
    kernels = check_kernels(p, kernels)
    factory = {} if like is None else dict(device=like.device, dtype=mixing_dtype(like.dtype))
    phi = nn.Linear(p, kernels, **factory)
    with torch.no_grad():
        if kernels == p:
            phi.weight.copy_(torch.eye(p) - 1.0 / p)
            phi.bias.fill_(1.0 / p)
        else:
            phi.weight.copy_(torch.cat([torch.eye(p), -torch.ones(1, p)]))
            phi.bias.copy_(torch.eye(kernels)[-1])
    return phi


class OmegaReader(nn.Module):
    """Reads the ω of the current call and maps it through this module's ``phi``."""

    p: int
    kernels: int
    phi: nn.Linear
    _last_omega: Tensor | None = None

    def omega(self) -> Tensor:
        """The ω of the current call: (p,), (B, p) or a map (B, p, *S)."""
        omega = current_omega()
        if omega is None:
            recomputed = self._omega_of_recomputation() if in_backward() else None
            if recomputed is not None:
                return recomputed
            raise MissingOmegaError(
                f"{type(self).__name__} ran without omega: call the TunableModel as model(x, omega=...) "
                "or run the layer inside tunify.use_omega(omega)"
            )
        if _transform() is None:  # ω wrapped by vmap or grad must not outlive the transform
            self.__dict__["_last_omega"] = omega  # a plain attribute: nn.Module's __setattr__ costs a call
        return omega

    def _omega_of_recomputation(self) -> Tensor | None:
        """The ω of a checkpointed segment recomputed in backward: the converted network's record of its
        forward calls (:mod:`tunify.layers.recompute`), else this layer's last ω (used outside one)."""
        calls = self.__dict__.get("_forward_calls")
        omega = calls.for_backward(type(self).__name__) if calls is not None else None
        return omega if omega is not None else self._last_omega

    def alpha(self, omega: Tensor | None = None) -> Tensor:
        """α = φ(ω): (kernels,) for a shared ω, (B, kernels) per sample, (B, kernels, *S) for a map."""
        omega = self.omega() if omega is None else omega
        return without_autocast(self._phi, omega)  # α feeds the (cached) mixing: in φ's own precision

    def _phi(self, omega: Tensor) -> Tensor:
        phi = self._modules["phi"]
        weight, bias = phi.weight, phi.bias
        omega = omega.to(weight.dtype)
        if omega_form(omega) == "map":
            return F.linear(omega.movedim(1, -1), weight, bias).movedim(-1, 1)
        return F.linear(omega, weight, bias)  # not phi(ω): a module call costs more than the product

    def alpha_exact(self, omega: Tensor) -> Tensor:
        """α at a shared ω in :func:`mixing_dtype` of φ's, for baking (a half-precision φ would round α)."""
        dtype = mixing_dtype(self.phi.weight.dtype)
        return F.linear(omega.to(dtype), self.phi.weight.to(dtype), self.phi.bias.to(dtype))

    def anchor(self, index: int) -> None:
        """Freeze φ and whatever α = e_index reads (see :func:`tunify.anchor`)."""
        self.phi.requires_grad_(False)

    def train(self, mode: bool = True) -> OmegaReader:
        """Also drop the inference cache: ``model.eval()`` before a validation pass then sees weights
        written through ``.data`` (an old-style EMA update), which no version counter records."""
        self.__dict__.pop("_cache", None)
        return super().train(mode)

    def cached(
        self, key_omega: Tensor | None, watched: Sequence[dict[str, Any]], slot: str, fn: Callable[[], T]
    ) -> T:
        """``fn()``, kept at inference until ``key_omega`` or a parameter in ``watched`` changes.

        So a network applied image after image with one ω mixes its kernels once and then costs what the
        original costs. ``watched`` holds the ``_parameters`` dicts that ``fn`` reads, so a replaced
        parameter shows too. Without autograd the result is keyed on the ω tensor object and version
        counters (bumped by every in-place update), and on where the parameters live (``.to()``,
        ``.half()``, ``.data =``). Tensors made under ``torch.inference_mode`` have no version counter: ω is
        then compared by value, and weights without one are never cached. Writes through ``.data``
        (``p.data.mul_(…)``) bump no counter: :meth:`train` / ``eval()`` drop the cache. This runs on every
        call of every layer, so it stays lean: one comprehension, keys compared with ``==``.
        """
        if torch.is_grad_enabled() or torch.compiler.is_compiling() or _transform() is not None:
            return fn()  # inside a torch.func transform the tensors are its wrappers: nothing to keep
        try:
            weights = [
                (t._version, t.data_ptr()) for params in watched for t in params.values() if t is not None
            ]
        except RuntimeError:  # an inference-mode tensor: no version counter, so never cached
            return fn()
        omega_key = _omega_key(key_omega)
        cache = self.__dict__.setdefault("_cache", {})
        hit = cache.get(slot)
        if hit is not None and hit[1] == omega_key and hit[0] == weights:
            return hit[2]
        result = fn()
        cache[slot] = (weights, omega_key, result, key_omega)  # ω kept alive: its id stays its own
        return result


def _omega_key(omega: Tensor | None) -> tuple | None:
    """What identifies ω for the cache: the tensor's id and version, or its values when it has no version."""
    if omega is None:
        return None
    try:
        return ("tensor", id(omega), omega._version)
    except RuntimeError:  # made under torch.inference_mode
        return ("values", tuple(omega.reshape(-1).tolist()), omega.device)


_is_batched: Callable[[Tensor], bool] = torch._C._functorch.is_batchedtensor
"""Whether ω is a per-sample row under ``torch.func.vmap``."""

_transform: Callable[[], Any] = torch._C._functorch.peek_interpreter_stack
"""The innermost active ``torch.func`` transform (vmap, grad, jvp …), or None outside them."""


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
        _take_hooks(base_layer, self)
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
        return self.cached(
            omega, self.watched(), "shared", lambda: self.source(self.alpha(shared_row(omega)))
        )

    def vertices(self) -> tuple[dict[str, Tensor] | None, dict[str, Tensor]]:
        """The source's constant tensors (None if linear) and α-slopes [kernels, *shape], for per-pixel ω."""
        return self.cached(None, self.watched(), "vertices", self.source.vertices)

    def uses_vertices(self, batch: int, rows: int, device: torch.device) -> bool:
        """Whether per-sample ω with ``rows`` rows per sample runs through the vertices
        (:meth:`per_sample_rows`): one row (a pooled vector); up to :data:`VERTEX_MAX_ROWS` (a U-Net's 4×4
        bottleneck, a few tokens) when there are more samples than kernels to build, except on a single CPU
        thread, where one product per sample is faster. Never while tracing or compiling, where the choice
        would fix a dynamic size (the batched products take any)."""
        if torch.compiler.is_compiling():
            return False
        if rows == 1:
            return True
        several_threads = device.type != "cpu" or torch.get_num_threads() > 1
        return rows <= VERTEX_MAX_ROWS and batch > self.kernels and several_threads

    def per_sample_rows(self, x: Tensor, omega: Tensor) -> Tensor:
        """``W_b x_b + b_b`` for each sample's columns (x (B, in, n) → (B, out, n)), through the vertices.

        With few columns per sample, building B weights costs more than the products (B times the weight's
        memory traffic, in batched products that use one core); running every column through each vertex
        weight in one product and mixing the kernels' results does not (the layer is linear in its weight).
        """
        constant, slopes = self.vertices()
        weight = slopes["weight"]
        kernels, out = weight.shape[:2]
        b, _, n = x.shape
        if n == 1:
            y = F.linear(x.squeeze(2), weight.reshape(kernels * out, -1))
        else:  # a 1×1 convolution: one product for the whole batch, its weight gradient summed inside
            y = F.conv1d(x, weight.reshape(kernels * out, -1, 1))
        alpha = self.alpha(omega).to(y.dtype)  # [B, kernels]
        y = torch.bmm(alpha.unsqueeze(1), y.reshape(b, kernels, out * n)).view(b, out, n)
        if "bias" in slopes:
            y = y + (alpha @ slopes["bias"]).unsqueeze(2)
        if constant is not None:
            y = y + F.conv1d(x, constant["weight"].reshape(out, -1, 1), constant.get("bias"))
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
        _take_hooks(self, plain, share=False)
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


_MODULE_HOOKS = (
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_backward_pre_hooks",
    "_backward_hooks",
    "_is_full_backward_hook",
)


def _take_hooks(source: nn.Module, target: nn.Module, *, share: bool = True) -> None:
    """Give ``target`` the forward and backward hooks registered on ``source``.

    Converting: a tunable layer runs in its original's place but never calls it as a module (or calls it
    through ``functional_call``), so hooks a user registered on the original move to the layer, which fires
    them once per call; the dictionaries move whole, so the handles still remove them. Baking
    (``share=False``): the plain layer gets copies, as a deep copy of the original would have had.
    """
    for name in _MODULE_HOOKS:
        if name not in source.__dict__:  # a hook kind this torch does not have
            continue
        hooks = source.__dict__[name]
        target.__dict__[name] = hooks if share else copy.copy(hooks)
        if share:
            source.__dict__[name] = type(hooks)() if hooks is not None else None


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


_METADATA = (
    Tensor.dtype.__get__,
    Tensor.device.__get__,
    Tensor.shape.__get__,
    Tensor.ndim.__get__,
    Tensor.layout.__get__,
    Tensor.is_cuda.__get__,
    Tensor.requires_grad.__get__,
    Tensor.size,
    Tensor.dim,
    Tensor.numel,
    Tensor.is_floating_point,
    Tensor.__len__,
)


class MetadataOnlyTensor(Tensor):
    """A layer's tensor read directly while it has no single value (one per sample, or per pixel).

    Its dtype, device and shape can be read; any use of its values raises ``error`` (see
    :meth:`TunableLayer.current_tensor`).
    """

    error: Exception

    @staticmethod
    def of(tensor: Tensor, error: Exception) -> MetadataOnlyTensor:
        out = tensor.detach().as_subclass(MetadataOnlyTensor)
        out.error = error
        return out

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func in _METADATA:
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **(kwargs or {}))
        leaves, _ = tree_flatten((args, kwargs))
        raise next(leaf.error for leaf in leaves if isinstance(leaf, MetadataOnlyTensor))


class LayerContainer(nn.Module):
    """A container a control strategy builds around a tunable layer (AdaFM: the convolution, then its
    filter). :func:`tunify.bake` puts :meth:`plain` in its place and bakes the layers inside."""

    def plain(self) -> nn.Module:
        raise NotImplementedError
