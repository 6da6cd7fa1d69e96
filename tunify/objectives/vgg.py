"""Frozen VGG-19 feature taps for perceptual, adversarial-companion and style losses.

Layers are tapped by their conventional names (``conv5_4``, ``relu3_3``, ...) on timm's ``vgg19`` (the
torchvision ImageNet weights, ``timm/vgg19.tv_in1k``). timm's ``features_only`` taps are post-ReLU only, so
the network's ``features`` stack is sliced by hand: pre-activation taps such as ESRGAN's conv5_4 need the
conv output before ReLU, and every ReLU is made out-of-place so a returned tensor is never overwritten.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_BLOCK_DEPTHS = (2, 2, 4, 4, 4)  # convs per VGG-19 block


def _vgg19_layer_names() -> list[str]:
    """Names of ``vgg19.features`` entries in order: conv1_1, relu1_1, ..., pool5."""
    names = []
    for block, depth in enumerate(_BLOCK_DEPTHS, start=1):
        for i in range(1, depth + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


VGG19_LAYERS: dict[str, int] = {name: i for i, name in enumerate(_vgg19_layer_names())}


class VGGWeightsError(RuntimeError):
    """The pretrained VGG-19 weights could not be obtained."""


def _load_state_dict(path: str | Path) -> dict[str, Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VGG-19 weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def _vgg19_features(pretrained: bool, depth: int) -> nn.Sequential:
    """The first ``depth`` modules of timm's ``vgg19.features``, ImageNet-trained or randomly initialised.

    Without pretrained weights the network is built on the meta device and only the kept convs are
    materialised: the unused 100M-parameter classifier would otherwise dominate start-up time. timm is
    imported here, not at module level: it pulls in torchvision and torch._dynamo (seconds), which
    ``import tunify.objectives`` should not pay when no perceptual loss is built.
    """
    import timm

    if pretrained:
        try:
            vgg = timm.create_model("vgg19.tv_in1k", pretrained=True)
        except Exception as err:
            raise VGGWeightsError(
                f"VGG-19 weights could not be downloaded ({type(err).__name__}: {err}); pass "
                "vgg_weights='path/to/vgg19.safetensors' (a timm or torchvision vgg19 state dict) "
                "or pretrained=False for tests"
            ) from err
        return nn.Sequential(*list(vgg.features.children())[:depth])
    with torch.device("meta"):
        vgg = timm.create_model("vgg19", pretrained=False)
    features = nn.Sequential(*list(vgg.features.children())[:depth]).to_empty(device="cpu")
    for module in features.modules():
        if isinstance(module, nn.Conv2d):  # variance-preserving, as timm's own VGG init
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return features


class VGGFeatures(nn.Module):
    """VGG-19 truncated after the deepest requested layer; returns ``{name: features}`` for [0, 1] RGB input.

    Always frozen and in eval mode (``train()`` is a no-op), but gradients flow to the input.

    Args:
        layers: names from ``VGG19_LAYERS``, e.g. ``("conv5_4",)`` or ``("relu3_3",)``.
        pretrained: download ImageNet weights through timm / the Hub; False gives random init (tests only).
        weights_path: local ``.safetensors`` / ``.pth`` state dict with ``features.N.*`` keys; overrides
            ``pretrained``.
    """

    def __init__(
        self, layers: Sequence[str], *, pretrained: bool = True, weights_path: str | Path | None = None
    ) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in VGG19_LAYERS]
        if unknown or not layers:
            raise ValueError(f"unknown VGG-19 layers {unknown}; choose from {list(VGG19_LAYERS)}")
        self.layers = tuple(layers)
        depth = max(VGG19_LAYERS[name] for name in layers) + 1
        self.features = _vgg19_features(pretrained and weights_path is None, depth)
        if weights_path is not None:
            self._load_features(_load_state_dict(weights_path))
        for i, module in enumerate(self.features):
            if isinstance(module, nn.ReLU):
                self.features[i] = nn.ReLU(inplace=False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        super().train(False)

    def _load_features(self, state: dict[str, Tensor]) -> None:
        wanted = self.features.state_dict()
        found = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        missing = [k for k in wanted if k not in found]
        if missing:
            raise ValueError(f"VGG-19 weights file lacks features.{missing[0]} (and {len(missing) - 1} more)")
        self.features.load_state_dict({k: found[k] for k in wanted})

    def train(self, mode: bool = True) -> VGGFeatures:
        """Stay in eval mode: the feature extractor is a fixed metric, never trained."""
        return self

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = (x - self.mean) / self.std
        wanted = {VGG19_LAYERS[name]: name for name in self.layers}
        out = {}
        for i, module in enumerate(self.features):
            x = module(x)
            if i in wanted:
                out[wanted[i]] = x
        return out
