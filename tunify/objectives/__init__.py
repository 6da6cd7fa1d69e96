"""Training objectives for tunable networks: the parametric multi-loss, its objectives and ω samplers.

Maggioni et al., "Tunable Convolutions with Parametric Multi-Loss Optimization", CVPR 2023: a network tuned
by ω is trained with L = Σ_i ω_i λ_i L_i using the same ω, drawn at random each step.
"""

from __future__ import annotations

from .adversarial import (
    Discriminator,
    GANObjective,
    relativistic_discriminator_loss,
    relativistic_generator_loss,
)
from .base import PIXEL_DISTANCES, Objective, build_objective, objective_names, register_objective
from .multi import LossResult, ParametricMultiLoss, expand_omega
from .pixel import (
    NoisePreservation,
    Reconstruction,
    UnsharpMask,
    gaussian_blur,
    gaussian_kernel,
    noise_preservation_target,
    unsharp_mask_target,
)
from .sampling import (
    CornerBiasedSampler,
    FunctionSampler,
    OmegaSampler,
    PerBatchSampler,
    SimplexSampler,
    UniformSampler,
    VertexMixSampler,
    build_sampler,
    sampler_names,
)
from .style import StyleObjective, gram_matrix, rgb_to_yuv, total_variation
from .vgg import VGG19_LAYERS, VGGFeatures, VGGWeightsError

__all__ = [
    "PIXEL_DISTANCES",
    "VGG19_LAYERS",
    "CornerBiasedSampler",
    "Discriminator",
    "FunctionSampler",
    "GANObjective",
    "LossResult",
    "NoisePreservation",
    "Objective",
    "OmegaSampler",
    "ParametricMultiLoss",
    "PerBatchSampler",
    "Reconstruction",
    "SimplexSampler",
    "StyleObjective",
    "UniformSampler",
    "UnsharpMask",
    "VGGFeatures",
    "VGGWeightsError",
    "VertexMixSampler",
    "build_objective",
    "build_sampler",
    "expand_omega",
    "gaussian_blur",
    "gaussian_kernel",
    "gram_matrix",
    "noise_preservation_target",
    "objective_names",
    "register_objective",
    "relativistic_discriminator_loss",
    "relativistic_generator_loss",
    "rgb_to_yuv",
    "sampler_names",
    "total_variation",
    "unsharp_mask_target",
]
