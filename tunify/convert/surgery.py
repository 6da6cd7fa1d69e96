"""``convert``: plan which layers and tensors of a network become tunable, and swap them in place."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.prune import BasePruningMethod
from torch.nn.utils.spectral_norm import SpectralNorm
from torch.nn.utils.weight_norm import WeightNorm

from ..layers import (
    TunableConv,
    TunableConvTranspose,
    TunableLayer,
    TunableLinear,
    TunableModule,
    TunableTensor,
    UnsupportedLayerError,
    factory_for,
    make_tensor_tunable,
    registered_types,
)
from ..layers.tensor import mixes_per_pixel
from ..layers.windows import note_windows
from .analysis import find_call_sites
from .config import ConvertConfig, TargetSpec, matches
from .model import TunableModel
from .report import ConversionReport, ReportRow

_MAP_ACTION = {TunableConv: "per pixel", TunableConvTranspose: "per pixel", TunableLinear: "per token"}
"""How an ω map acts on each layer type (the report's "ω map" column); other layers take its average."""


class ConversionError(ValueError):
    """The model cannot be converted as asked (already converted, nothing to convert, a conflict)."""


# Containers whose fused inference kernels read their children's weights directly, bypassing forward():
# these attributes switch the fused path off while tunable layers live inside.
_FUSED_PATH_SWITCHES = {
    nn.TransformerEncoderLayer: {"activation_relu_or_gelu": 0},
    nn.TransformerEncoder: {"use_nested_tensor": False},
}


def _named_layers(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module, nn.Module, str]]:
    """(full name, layer, parent, attribute) for every convertible layer, aliases included, not descending
    into layers (an attention module's ``out_proj`` belongs to the attention module)."""
    for attr, child in module._modules.items():  # not named_children(), which hides aliases
        if child is None:
            continue
        name = f"{prefix}.{attr}" if prefix else attr
        if factory_for(child) is not None:
            yield name, child, module, attr
        else:
            yield from _named_layers(child, name)


def _numel(tensors: list[Tensor]) -> int:
    return sum(t.numel() for t in tensors)


def _added(p: int, kernels: int, tensors: list[Tensor]) -> int:
    """Parameters a conversion adds: the extra copies and φ (kernels × p weights, kernels biases)."""
    return (kernels - 1) * _numel(tensors) + kernels * p + kernels


def _strategy(config: ConvertConfig) -> Any:
    """The config's strategy with its options checked (``tunify.strategies`` sits above this room)."""
    from ..strategies import get_strategy

    try:
        return get_strategy(config.strategy, **config.strategy_options)
    except ValueError as error:
        raise ConversionError(str(error)) from None


def _layer_tensors(layer: nn.Module, factory: Any) -> dict[str, Tensor]:
    """The tensors the layer's tunable class takes from it (the names its source will produce)."""
    names = getattr(factory, "tensor_names", ("weight", "bias"))
    found = {}
    for name in names:
        owner, _, attr = name.rpartition(".")
        tensor = getattr(layer.get_submodule(owner), attr, None)
        if isinstance(tensor, Tensor):
            found[name] = tensor
    return found


def _accepts_source(factory: Any) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return "source" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _shape(tensors: list[Tensor]) -> str:
    return " ".join(str(tuple(t.shape)) for t in tensors)


class _Plan:
    """Everything :func:`convert` will do, worked out before anything changes."""

    def __init__(self, model: nn.Module, config: ConvertConfig) -> None:
        unknown = [t.__name__ for t in config.layer_types or () if not issubclass(t, registered_types())]
        if unknown:
            raise UnsupportedLayerError(
                f"layer_types {unknown} are not supported layer types; register them with tunify.register_tunable"
            )
        self.config = config
        self.strategy = _strategy(config)
        self.layers: dict[int, list[tuple[str, nn.Module, nn.Module, str]]] = {}
        self.modules: dict[str, list[str]] = {}  # owner name -> parameters it passes to F.conv*/F.linear
        self.tensors: list[str] = []
        self.report = ConversionReport()
        self.found_any = False
        for name, layer, parent, attr in _named_layers(model):
            self.found_any = True
            if config.selects(layer, name) or id(layer) in self.layers:
                self.layers.setdefault(id(layer), []).append((name, layer, parent, attr))
        if config.functional:
            self._plan_functional(model)
        if config.parameters is not None:
            self._plan_tensors(model, config.parameters)
        self._check_strategy(model)
        self._fill_report(model)
        self._warn_tied()

    def _warn_tied(self) -> None:
        """Two converted layers that share one tensor (a weight tied between encoder and decoder) each get
        copies of their own: exact at conversion, but fine-tuning unties them. Say so."""
        owners: dict[int, list[str]] = {}
        for aliases in self.layers.values():
            name, layer = aliases[0][0], aliases[0][1]
            for attr, tensor in layer.named_parameters(recurse=False):
                owners.setdefault(id(tensor), []).append(f"{name}.{attr}")
        tied = [names for names in owners.values() if len(names) > 1]
        if tied:
            warnings.warn(
                f"{' and '.join(tied[0])} are one tensor (tied); each converted layer gets its own tunable copies, "
                f"so fine-tuning unties them ({len(tied)} tied group(s))",
                stacklevel=5,
            )

    def _check_strategy(self, model: nn.Module) -> None:
        """Every planned layer, module and tensor can take the strategy: else ConversionError, nothing changed."""
        strategy, p, kernels = self.strategy, self.config.p, self.config.kernels
        if strategy.name == "kernels":
            return
        for aliases in self.layers.values():
            name, layer = aliases[0][0], aliases[0][1]
            factory = factory_for(layer)
            if not _accepts_source(factory):
                raise ConversionError(
                    f"strategy {strategy.name!r} cannot convert layer {name!r} ({type(layer).__name__}): its "
                    f"registered tunable factory {getattr(factory, '__name__', factory)!r} takes no source="
                )
            strategy.check(layer, name, p, kernels)
        for owner in self.modules:
            module = model.get_submodule(owner)
            strategy.check(module, owner or "<root>", p, kernels)
        tensors = self.tensors + [n for owner, attrs in self.modules.items() if owner == "" for n in attrs]
        if tensors and not strategy.tensors_as_copies:
            raise ConversionError(
                f"strategy {strategy.name!r} cannot convert the tensors {tensors[:5]} (named by parameters= "
                "or used by the model's own forward): it acts on convolutions only; drop them or use another "
                "strategy"
            )

    def _plan_functional(self, model: nn.Module) -> None:
        layer_names = {alias[0]: key for key, aliases in self.layers.items() for alias in aliases}
        for site, tensors in find_call_sites(model).functional.items():
            self.found_any = True
            module = model.get_submodule(site)
            if self.config.layer_types is not None or not self.config.selects_module(module, site):
                continue
            for tensor in tensors:  # a layer whose weight the site uses directly is converted with the site
                owner = f"{site}.{tensor}".strip(".").rpartition(".")[0]
                self.layers.pop(layer_names.get(owner), None)
            self.modules[site] = tensors

    def _plan_tensors(self, model: nn.Module, spec: TargetSpec) -> None:
        inside_layers = {alias[0] for aliases in self.layers.values() for alias in aliases} | set(
            self.modules
        )
        for name, _ in model.named_parameters(remove_duplicate=False):
            owner = name.rpartition(".")[0]
            if matches(name, spec) and owner not in inside_layers and name not in self.tensors:
                self.tensors.append(name)
        if not self.tensors:
            raise ConversionError(
                f"parameters={spec!r} matches no parameter of the model outside converted layers"
            )

    def _fill_report(self, model: nn.Module) -> None:
        p, kernels = self.config.p, self.config.kernels
        for aliases in self.layers.values():
            name, layer = aliases[0][0], aliases[0][1]
            factory = factory_for(layer)
            tensors = [t for n in ("weight", "bias") if isinstance(t := getattr(layer, n, None), Tensor)]
            if isinstance(layer, nn.MultiheadAttention):
                tensors = [t for t in layer.parameters() if t is not layer.bias_k and t is not layer.bias_v]
            kind = "layer" if factory is not TunableModule else "module"
            cls = getattr(factory, "__name__", type(factory).__name__)
            added = _added(p, kernels, tensors)
            if self.strategy.name != "kernels":
                named = _layer_tensors(layer, factory)
                added = self.strategy.params_added(layer, named, p, kernels) + kernels * p + kernels
                cls = self.strategy.tunable_class(cls, named)
            others = tuple(a[0] for a in aliases[1:])
            spatial = _MAP_ACTION.get(factory, "average")
            row = ReportRow(
                name,
                kind,
                type(layer).__name__,
                _shape(tensors),
                cls,
                added,
                others,
                spatial,
            )
            self.report.append(row)
        for owner, attrs in self.modules.items():
            module = model.get_submodule(owner)
            tensors = [module.get_parameter(a) for a in attrs]
            cls = "TunableTensor" if owner == "" else "TunableModule"
            added = _added(p, kernels, tensors)
            if self.strategy.name != "kernels" and owner != "":
                named = {a: module.get_parameter(a) for a in attrs}
                added = self.strategy.params_added(module, named, p, kernels) + kernels * p + kernels
                cls = self.strategy.tunable_class(cls, named)
            self.report.append(
                ReportRow(owner or "<root>", "module", type(module).__name__, _shape(tensors), cls, added)
            )
        for name in self.tensors:
            tensor = model.get_parameter(name)
            self.report.append(
                ReportRow(
                    name,
                    "tensor",
                    "Parameter",
                    _shape([tensor]),
                    "TunableTensor",
                    _added(p, kernels, [tensor]),
                    spatial="per pixel" if mixes_per_pixel(tuple(tensor.shape)) else "average",
                )
            )

    def check_not_empty(self) -> None:
        if self.report:
            return
        if not self.found_any:
            raise ConversionError(
                "nothing to convert: the model has no Conv/ConvTranspose/Linear/MultiheadAttention layer and no "
                "functional conv/linear call on its own parameters; register its layer types with "
                "tunify.register_tunable or name tensors with parameters=..."
            )
        raise ConversionError(
            "nothing to convert: every supported layer was filtered out by include/exclude/layer_types/"
            f"filter_fn (include={self.config.include!r}, exclude={self.config.exclude!r}, "
            f"layer_types={self.config.layer_types!r})"
        )


def _check_convertible(model: nn.Module) -> None:
    """What convert cannot work on: TorchScript, lazy layers before their first call, weights computed by
    hooks, a converted model."""
    if isinstance(model, torch.jit.ScriptModule):
        raise ConversionError(
            "a TorchScript module cannot be converted: convert the Python module, then script it"
        )
    lazy = next(
        (n for n, q in model.named_parameters() if isinstance(q, nn.parameter.UninitializedParameter)), None
    )
    if lazy is not None:
        raise ConversionError(
            f"{lazy} is not initialised yet (a lazy layer): run the model once on an example input first"
        )
    _check_no_weight_hooks(model)
    _check_not_converted(model)


def _check_not_converted(model: nn.Module) -> None:
    if isinstance(model, TunableModel) or any(
        isinstance(m, TunableLayer | TunableTensor) for m in model.modules()
    ):
        raise ConversionError(
            "the model is already converted (it contains tunable layers); convert it only once"
        )


def _check_no_weight_hooks(model: nn.Module) -> None:
    """Refuse layers whose weight a forward pre-hook computes (``torch.nn.utils.weight_norm`` and
    ``spectral_norm``, deprecated; ``torch.nn.utils.prune``): that weight is no parameter, so it can be
    neither copied nor mixed, and the hook would overwrite the mixed one."""
    for name, module in model.named_modules():
        for hook in module._forward_pre_hooks.values():
            where = name or "<root>"
            if isinstance(hook, WeightNorm | SpectralNorm):
                fn = "weight_norm" if isinstance(hook, WeightNorm) else "spectral_norm"
                raise ConversionError(
                    f"{where} uses torch.nn.utils.{fn}, whose hook computes its weight: apply "
                    f"torch.nn.utils.parametrizations.{fn} instead (tunify converts those), or remove it "
                    f"first (torch.nn.utils.remove_{fn})"
                )
            if isinstance(hook, BasePruningMethod):
                raise ConversionError(
                    f"{where} is pruned (torch.nn.utils.prune), whose hook computes its {hook._tensor_name}: "
                    f"make the pruning permanent first, torch.nn.utils.prune.remove(module, "
                    f"{hook._tensor_name!r})"
                )


def convert(
    model: nn.Module,
    p: int,
    *,
    include: TargetSpec = None,
    exclude: TargetSpec = None,
    layer_types: tuple[type[nn.Module], ...] | None = None,
    filter_fn: Any = None,
    parameters: TargetSpec = None,
    functional: bool = True,
    allow_extrapolation: bool = False,
    independent: bool = False,
    batch_dim: int = 0,
    dry_run: bool = False,
    strategy: str = "kernels",
    **options: Any,
) -> TunableModel | ConversionReport:
    """Make ``model`` tunable **in place** and return it wrapped in a :class:`TunableModel`.

    Every selected layer's p kernels and biases start as copies of the pretrained ones, so the converted
    model computes exactly what ``model`` computed, for every ω, until it is fine-tuned. See
    :class:`ConvertConfig` for the options. With ``dry_run=True`` nothing changes and the
    :class:`ConversionReport` of what would be converted is returned.

    ``strategy`` chooses how layers become tunable, ``options`` are its options (``tunify.strategies``):
    ``"kernels"`` (default) p full copies; ``"lowrank"`` (``rank=4``) low-rank deltas; ``"atoms"``
    (``atoms=None, overcomplete=0, rank=4``) filter-atom deltas; ``"adafm"`` (``kernel_size=1``) a depthwise
    filter after each convolution; ``"ftn"`` (``groups=16``) filter transition networks. Every strategy
    starts at the pretrained network for every ω, bakes, saves and anchors like the default.

    Example:
        >>> tmodel = tunify.convert(net, p=2, exclude=["head"], parameters=["beta", "gamma"])
        >>> y = tmodel(x, omega=torch.tensor([0.3, 0.7]))
    """
    config = ConvertConfig(
        p=p,
        include=include,
        exclude=exclude,
        layer_types=layer_types,
        filter_fn=filter_fn,
        parameters=parameters,
        functional=functional,
        allow_extrapolation=allow_extrapolation,
        independent=independent,
        batch_dim=batch_dim,
        strategy=strategy,
        strategy_options=options,
    )
    return convert_with(model, config, dry_run=dry_run)


def convert_with(
    model: nn.Module, config: ConvertConfig, *, dry_run: bool = False
) -> TunableModel | ConversionReport:
    """:func:`convert` driven by a :class:`ConvertConfig`."""
    _check_convertible(model)
    plan = _Plan(model, config)
    plan.check_not_empty()
    if dry_run:
        return plan.report
    strategy = plan.strategy
    config.strategy_options = dict(strategy.options)  # saved with every default filled in
    extra = (
        {"kernels": config.kernels} if config.independent else {}
    )  # factories of p copies need not know it
    source = strategy.source(config.p)
    for aliases in plan.layers.values():
        layer = aliases[0][1]
        if strategy.name == "kernels":
            tunable = factory_for(layer)(layer, config.p, **extra)
        else:
            tunable = strategy.build(layer, factory_for(layer), config.p, config.kernels)
        for _, _, parent, attr in aliases:
            setattr(parent, attr, tunable)
    # innermost first: a site inside another site is replaced before its parent is wrapped
    for owner in sorted(plan.modules, key=lambda name: name.count(".") + bool(name), reverse=True):
        attrs = plan.modules[owner]
        if owner == "":
            for name in attrs:
                module_name, _, attr = name.rpartition(".")
                make_tensor_tunable(
                    model.get_submodule(module_name), attr, config.p, name, kernels=config.kernels
                )
        else:
            parent_name, _, attr = owner.rpartition(".")
            module = model.get_submodule(owner)
            tunable_module = TunableModule(
                module, config.p, tuple(attrs), kernels=config.kernels, source=source
            )
            setattr(model.get_submodule(parent_name), attr, tunable_module)
    for name in plan.tensors:
        owner, _, attr = name.rpartition(".")
        make_tensor_tunable(model.get_submodule(owner), attr, config.p, name, kernels=config.kernels)
    note_windows(model, TunableLinear)  # ω maps follow the windows of Swin-style blocks
    return TunableModel(model, config, plan.report, _switch_off_fused_paths(model))


def _switch_off_fused_paths(model: nn.Module) -> dict[str, dict[str, Any]]:
    restore = {}
    for name, module in model.named_modules():
        switches = _FUSED_PATH_SWITCHES.get(type(module))
        if switches and any(isinstance(m, TunableLayer) for m in module.modules()):
            restore[name] = {attr: getattr(module, attr) for attr in switches}
            for attr, value in switches.items():
                setattr(module, attr, value)
    return restore
