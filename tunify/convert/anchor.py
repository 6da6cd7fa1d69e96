"""Keep one corner of ω exactly at the pretrained network while fine-tuning the others."""

from __future__ import annotations

from torch import nn

from ..layers import TensorBank, TunableTensor
from .model import TunableModel


def anchor(tmodel: TunableModel, index: int = 0) -> TunableModel:
    """Freeze copy ``index`` of every tunable tensor and every φ, in place.

    A converted network starts with every copy equal to the pretrained tensor and φ at α = ω − mean(ω) + 1/p,
    so α(e_index) = e_index; with independent ω entries index p is the base copy, α(0) = e_p. Freezing that
    copy and φ keeps ``tmodel(x, omega=e_index)`` (ω = 0 for the base copy) equal to the pretrained network
    for the whole fine-tuning: the objective the pretrained network was trained for (fidelity, for a
    denoiser) cannot regress, and the other copies learn the rest of the ω range around it.
    The optimiser must be built after this call (the trainer skips parameters that do not require grad).
    """
    kernels = tmodel.config.kernels
    if not 0 <= index < kernels:
        raise ValueError(f"anchor index must be in [0, {kernels - 1}], got {index}")
    for module in tmodel.base_model.modules():
        if isinstance(module, TensorBank):
            module.get_parameter(str(index)).requires_grad_(False)
        elif isinstance(module, nn.utils.parametrize.ParametrizationList) and isinstance(
            module[0], TunableTensor
        ):
            getattr(module, f"original{index}").requires_grad_(False)
    for name, param in tmodel.base_model.named_parameters():
        if ".phi." in f".{name}":
            param.requires_grad_(False)
    return tmodel
