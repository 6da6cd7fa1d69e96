"""Keep one corner of ω exactly at the pretrained network while fine-tuning the others."""

from __future__ import annotations

from torch.nn.modules.batchnorm import _NormBase

from ..layers import anchor_layers
from .model import TunableModel


def anchor(tmodel: TunableModel, index: int = 0) -> TunableModel:
    """Freeze entry ``index`` of every tunable layer's source and tensor, every φ, and every parameter that all
    ω share, in place.

    A converted network starts with every copy equal to the pretrained tensor and φ at α = ω − mean(ω) + 1/p,
    so α(e_index) = e_index; with independent ω entries index p is the base copy, α(0) = e_p. Freezing that
    entry and φ keeps ``tmodel(x, omega=e_index)`` (ω = 0 for the base copy) equal to the pretrained network
    for the whole fine-tuning: the objective the pretrained network was trained for (fidelity, for a
    denoiser) cannot regress, and the other entries learn the rest of the ω range around it. A frozen copy
    is a parameter of its own, so no optimiser (weight decay included) ever touches it.

    Parameters outside the tunable layers (normalisation weights, SwinIR's position-bias tables, layers
    left unconverted) act at every ω, so training them would move the anchored corner too: they are frozen.
    To let such a tensor learn, make it tunable (``tunify.convert(..., parameters=[...])``): then only its
    anchored entry stays. BatchNorm running statistics are shared too, and move in training mode however the
    optimiser is set up: their momentum is set to 0, so they stay the pretrained network's (training-mode
    outputs still normalise with the batch's statistics); :func:`tunify.bake` gives the plain network its
    momentum back. The optimiser must be built after this call (the trainer skips parameters that do not
    require grad).
    """
    kernels = tmodel.config.kernels
    if not 0 <= index < kernels:
        raise ValueError(f"anchor index must be in [0, {kernels - 1}], got {index}")
    anchor_layers(tmodel.base_model, index)
    for name, norm in tmodel.base_model.named_modules():
        if isinstance(norm, _NormBase) and norm.track_running_stats:
            tmodel._restore.setdefault(name, {}).setdefault("momentum", norm.momentum)
            norm.momentum = 0.0  # running = (1 − 0)·running + 0·batch: the pretrained statistics stay
    return tmodel
