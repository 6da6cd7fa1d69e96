"""Which parts of each zoo architecture become tunable: data that recipes pass on to `tunify.convert`.

`tunify.convert` turns every Conv/Linear into a tunable layer by default; what it cannot guess are the
plain tensors an architecture uses as weights (NAFNet's β/γ, SwinIR's relative position bias tables).
Keeping the choice here, as one dict per architecture, lets recipes, docs and the Hub agree on it.
"""

from __future__ import annotations

import copy
from typing import Any

import torch.nn as nn

from .spec import ArchSpec, describe

#: Per architecture: `convert` = keyword arguments for `tunify.convert` (besides p); `options` = named
#: switches whose keyword arguments are merged in when turned on (lists are concatenated);
#: `converted`/`kept` = what that means, in words, for the docs and model cards.
TUNABLE_TARGETS: dict[str, dict[str, Any]] = {
    "SwinIR": {
        "convert": {},
        "options": {
            "relative_position_bias": {"parameters": ["relative_position_bias_table"]},
            "norms": {
                "parameters": [
                    "norm1.weight",
                    "norm1.bias",
                    "norm2.weight",
                    "norm2.bias",
                    "norm.weight",
                    "norm.bias",
                ]
            },
        },
        "converted": "every Linear (attn.qkv, attn.proj, mlp.fc1, mlp.fc2) and every Conv2d (head conv_first, "
        "the conv closing each RSTB, conv_after_body, and the upsampler convs)",
        "kept": "LayerNorms (unless norms=True) and the relative position bias tables (unless "
        "relative_position_bias=True); the shift masks and position indices are constants",
    },
    "NAFNet": {
        "convert": {"parameters": ["beta", "gamma"]},
        # No `norms` option: LayerNorm2d runs a custom autograd.Function that cannot be vmapped, and per-sample
        # tunable tensors are evaluated under vmap.
        "options": {},
        "converted": "every Conv2d (intro, ending, the 1x1 and depthwise convs of each block, the "
        "channel-attention 1x1 sca.1, the strided down-sampling convs and the 1x1 up-sampling convs) and the "
        "per-channel residual scales beta and gamma of every block",
        "kept": "LayerNorm2d",
    },
    "SPAN": {
        # In eval mode each Conv3XC folds its three training convs into `eval_conv` on every forward and
        # overwrites eval_conv's weight: that layer is derived, so only the convs it is folded from are tuned.
        "convert": {"exclude": ["eval_conv"]},
        "options": {},
        "converted": "every Conv2d except the re-parameterised eval_conv of each Conv3XC (rebuilt from the "
        "tunable training-time convs on every forward)",
        "kept": "nothing else",
    },
}


def _architecture_of(model_or_architecture: nn.Module | str | dict[str, Any] | ArchSpec) -> str:
    if isinstance(model_or_architecture, str):
        return model_or_architecture
    if isinstance(model_or_architecture, (dict, ArchSpec)):
        return ArchSpec.from_dict(model_or_architecture).architecture
    if isinstance(model_or_architecture, nn.Module):
        try:
            return describe(model_or_architecture)["architecture"]
        except Exception:
            return type(model_or_architecture).__name__
    raise TypeError(
        f"expected a model, an architecture name or a spec, got {type(model_or_architecture).__name__}"
    )


def default_tunable_targets(
    model_or_architecture: nn.Module | str | dict[str, Any] | ArchSpec, **options: bool
) -> dict[str, Any]:
    """Keyword arguments for `tunify.convert(model, p, **targets)` that convert what the paper converts.

    Options (see `TUNABLE_TARGETS`): SwinIR `relative_position_bias`, `norms`. An
    architecture without an entry (timm models, other spandrel networks) gets `{}`: every Conv/Linear.
    """
    arch = _architecture_of(model_or_architecture)
    entry = TUNABLE_TARGETS.get(arch, {"convert": {}, "options": {}})
    unknown = sorted(set(options) - set(entry["options"]))
    if unknown:
        raise ValueError(
            f"unknown tunable-target option(s) {unknown} for {arch}; available: {sorted(entry['options'])}"
        )
    out = copy.deepcopy(entry["convert"])
    for name, on in options.items():
        if not on:
            continue
        for key, value in entry["options"][name].items():
            if isinstance(value, list):
                out[key] = [*out.get(key, []), *(v for v in value if v not in out.get(key, []))]
            else:
                out[key] = value
    return out
