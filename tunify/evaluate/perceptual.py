"""Optional LPIPS (Zhang et al., CVPR 2018) through the `lpips` package, strictly offline.

LPIPS needs the `lpips` package (which ships its linear layers) and an ImageNet backbone from torchvision,
which torchvision would download on first use. We only build it when that backbone is already in the torch hub
cache (`$TORCH_HOME/hub/checkpoints`), so evaluation and tests never touch the network.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from tunify.evaluate.metrics import quantize

_BACKBONE_WEIGHTS = {"alex": "AlexNet_Weights", "vgg": "VGG16_Weights", "squeeze": "SqueezeNet1_1_Weights"}


class MetricUnavailableError(RuntimeError):
    """A metric's package or weights are not available locally (we never download them)."""


def lpips_unavailable_reason(net: str = "alex") -> str | None:
    """Why LPIPS cannot run offline right now, or None when it can."""
    if net not in _BACKBONE_WEIGHTS:
        return f"unknown LPIPS net {net!r}; choose one of {sorted(_BACKBONE_WEIGHTS)}"
    if importlib.util.find_spec("lpips") is None:
        return "LPIPS skipped: the 'lpips' package is not installed (pip install lpips)"
    import torchvision.models as tvm

    url = getattr(tvm, _BACKBONE_WEIGHTS[net]).IMAGENET1K_V1.url
    path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if not path.is_file():
        return f"LPIPS skipped: {net!r} backbone weights not found at {path} (tunify never downloads them)"
    return None


class LPIPS:
    """Per-image LPIPS [B] (lower is better) on 8-bit-quantised images; raises MetricUnavailableError if offline."""

    def __init__(self, net: str = "alex", *, device: str | torch.device = "cpu") -> None:
        reason = lpips_unavailable_reason(net)
        if reason:
            raise MetricUnavailableError(reason)
        import lpips

        self.model = lpips.LPIPS(net=net, verbose=False).to(device).eval()
        self.device = device

    @torch.no_grad()
    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        a = quantize(pred).float().div(255).to(self.device)
        b = quantize(target).float().div(255).to(self.device)
        if a.ndim == 3:
            a, b = a[None], b[None]
        return self.model(a, b, normalize=True).flatten().double().cpu()
