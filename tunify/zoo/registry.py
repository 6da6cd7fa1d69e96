"""Named network configurations, so recipes build their networks by name: `create("swinir_classical_x2")`.

Built-in configurations are the published SwinIR and NAFNet models, with the hyper-parameters of the
official code (SwinIR `main_test_swinir.py`; NAFNet `options/test/{SIDD,GoPro}/*.yml`). Any timm model is
available as `timm:<name>` (or by its bare timm name when no registered name shadows it).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch.nn as nn

from .errors import UnknownModelError
from .spec import TIMM_PREFIX, ArchSpec, build


@dataclass(frozen=True)
class ModelEntry:
    """A registered name: how to build it, a one-line description, and its spec when it is data."""

    name: str
    description: str
    factory: Callable[..., nn.Module]
    spec: ArchSpec | None = None


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str, *, description: str, overwrite: bool = False
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering `factory(**overrides) -> nn.Module` under `name` (like timm's @register_model)."""

    def deco(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _add(ModelEntry(name, description, factory), overwrite)
        return factory

    return deco


def register_config(
    name: str, architecture: str, description: str, *, overwrite: bool = False, **kwargs: Any
) -> ArchSpec:
    """Register a configuration given as data: `create(name, **o)` builds `ArchSpec(architecture, kwargs | o)`."""
    spec = ArchSpec(architecture, dict(kwargs), name=name)

    def factory(**overrides: Any) -> nn.Module:
        return build(ArchSpec(spec.architecture, {**spec.kwargs, **overrides}, spec.class_name, name))

    _add(ModelEntry(name, description, factory, spec), overwrite)
    return spec


def _add(entry: ModelEntry, overwrite: bool) -> None:
    if not entry.name or entry.name.startswith(TIMM_PREFIX):
        raise ValueError(f"invalid model name {entry.name!r}")
    if entry.name in _REGISTRY and not overwrite:
        raise ValueError(
            f"model name {entry.name!r} is already registered (pass overwrite=True to replace it)"
        )
    _REGISTRY[entry.name] = entry


def config(name: str) -> ArchSpec:
    """The spec of a registered configuration (not built), e.g. for model cards or to edit it."""
    entry = _REGISTRY.get(name)
    if entry is None:
        raise UnknownModelError(_unknown_message(name))
    if entry.spec is None:
        raise UnknownModelError(
            f"model {name!r} is registered by a factory, not as a config; build it with create()"
        )
    return entry.spec


def list_models(pattern: str | None = None, *, timm: bool = False) -> dict[str, str]:
    """Registered names → one-line descriptions; `pattern` is a shell glob; `timm=True` adds `timm:<name>`."""
    import fnmatch

    out = {n: e.description for n, e in sorted(_REGISTRY.items())}
    if timm:
        import timm as _timm

        out.update({f"{TIMM_PREFIX}{n}": "timm model (freshly initialised)" for n in _timm.list_models()})
    if pattern:
        out = {n: d for n, d in out.items() if fnmatch.fnmatch(n, pattern)}
    return out


def _unknown_message(name: str) -> str:
    import timm

    bare = name[len(TIMM_PREFIX) :] if name.startswith(TIMM_PREFIX) else name
    ours = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.5)
    theirs = [
        f"{TIMM_PREFIX}{n}" for n in difflib.get_close_matches(bare, timm.list_models(), n=5, cutoff=0.6)
    ]
    close = ours + theirs
    hint = f" Close matches: {', '.join(close)}." if close else ""
    return (
        f"unknown model name {name!r}: neither registered in tunify.zoo nor a timm model.{hint} "
        "See tunify.zoo.list() (and list(timm=True))."
    )


def create(name: str, **overrides: Any) -> nn.Module:
    """A freshly initialised network by name, in training mode; `overrides` replace config keywords.

    Names: the registered configs (`tunify.zoo.list()`), `timm:<name>`, or a bare timm model name.
    Pretrained weights come from `load` (official checkpoints) or the Hub, never from here.
    """
    if "pretrained" in overrides:
        raise ValueError(
            "create() builds freshly initialised networks; load official weights with tunify.zoo.load(path)"
        )
    entry = _REGISTRY.get(name)
    if entry is not None:
        return entry.factory(**overrides)
    import timm

    timm_name = name[len(TIMM_PREFIX) :] if name.startswith(TIMM_PREFIX) else name
    if timm.is_model(timm_name):
        return build(ArchSpec(f"{TIMM_PREFIX}{timm_name}", dict(overrides)))
    raise UnknownModelError(_unknown_message(name))


# --- built-in configurations ------------------------------------------------------------------------------
# SwinIR (Liang et al., ICCVW 2021), official main_test_swinir.py. Classical SR uses the DF2K models
# (training patch 64, "s64w8"); pass img_size=48 for the DIV2K ones. img_size only sizes the stored shift
# masks: inputs of any size work (the network pads to a multiple of the window and recomputes the masks).
_SWINIR_M = dict(
    window_size=8, img_range=1.0, depths=[6] * 6, embed_dim=180, num_heads=[6] * 6, mlp_ratio=2.0
)

for _s in (2, 3, 4, 8):
    register_config(
        f"swinir_classical_x{_s}",
        "SwinIR",
        f"SwinIR-M classical SR x{_s} (pixelshuffle, 11.8M params; DIV2K+Flickr2K, bicubic)",
        upscale=_s,
        in_chans=3,
        img_size=64,
        upsampler="pixelshuffle",
        resi_connection="1conv",
        **_SWINIR_M,
    )
for _s in (2, 3, 4):
    register_config(
        f"swinir_lightweight_x{_s}",
        "SwinIR",
        f"SwinIR-S lightweight SR x{_s} (pixelshuffledirect, ~0.9M params; DIV2K, bicubic)",
        upscale=_s,
        in_chans=3,
        img_size=64,
        window_size=8,
        img_range=1.0,
        depths=[6] * 4,
        embed_dim=60,
        num_heads=[6] * 4,
        mlp_ratio=2.0,
        upsampler="pixelshuffledirect",
        resi_connection="1conv",
    )
register_config(
    "swinir_real_x4",
    "SwinIR",
    "SwinIR-M real-world SR x4 (nearest+conv; BSRGAN-style degradations, GAN-trained)",
    upscale=4,
    in_chans=3,
    img_size=64,
    upsampler="nearest+conv",
    resi_connection="1conv",
    **_SWINIR_M,
)
register_config(
    "swinir_real_x4_large",
    "SwinIR",
    "SwinIR-L real-world SR x4 (nearest+conv, 3conv residual, embed 240, 9 stages)",
    upscale=4,
    in_chans=3,
    img_size=64,
    window_size=8,
    img_range=1.0,
    depths=[6] * 9,
    embed_dim=240,
    num_heads=[8] * 9,
    mlp_ratio=2.0,
    upsampler="nearest+conv",
    resi_connection="3conv",
)
for _name, _chans, _what in (("swinir_color_dn", 3, "colour"), ("swinir_gray_dn", 1, "greyscale")):
    register_config(
        _name,
        "SwinIR",
        f"SwinIR-M {_what} Gaussian denoising (one model per noise level 15/25/50; training patch 128)",
        upscale=1,
        in_chans=_chans,
        img_size=128,
        upsampler="",
        resi_connection="1conv",
        **_SWINIR_M,
    )

# NAFNet (Chen et al., ECCV 2022), official options/test/SIDD/NAFNet-width{32,64}.yml and
# options/test/GoPro/NAFNet-width{32,64}.yml. The GoPro numbers of the paper use test-time local
# converter (NAFNetLocal); spandrel and tunify run the plain NAFNet.
for _w in (32, 64):
    register_config(
        f"nafnet_sidd_w{_w}",
        "NAFNet",
        f"NAFNet width {_w} for real denoising (SIDD); enc [2,2,4,8], middle 12, dec [2,2,2,2]",
        img_channel=3,
        width=_w,
        enc_blk_nums=[2, 2, 4, 8],
        middle_blk_num=12,
        dec_blk_nums=[2, 2, 2, 2],
    )
    register_config(
        f"nafnet_gopro_w{_w}",
        "NAFNet",
        f"NAFNet width {_w} for motion deblurring (GoPro); enc [1,1,1,28], middle 1, dec [1,1,1,1]",
        img_channel=3,
        width=_w,
        enc_blk_nums=[1, 1, 1, 28],
        middle_blk_num=1,
        dec_blk_nums=[1, 1, 1, 1],
    )
