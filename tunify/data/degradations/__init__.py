"""Seeded, batched image degradations, constructible by name from recipe configs (`build_degradation`)."""

from __future__ import annotations

from tunify.data.degradations.base import (
    Degradation,
    Params,
    build_degradation,
    degradation_names,
    register_degradation,
)
from tunify.data.degradations.blur import GaussianBlur, gaussian_blur, gaussian_kernel1d, gaussian_kernel2d
from tunify.data.degradations.chain import Chain, blur_noise
from tunify.data.degradations.downsample import BicubicDownsample, bicubic_downsample, bicubic_matrix
from tunify.data.degradations.noise import GaussianNoise, add_gaussian_noise

__all__ = [
    "BicubicDownsample",
    "Chain",
    "Degradation",
    "GaussianBlur",
    "GaussianNoise",
    "Params",
    "add_gaussian_noise",
    "bicubic_downsample",
    "bicubic_matrix",
    "blur_noise",
    "build_degradation",
    "degradation_names",
    "gaussian_blur",
    "gaussian_kernel1d",
    "gaussian_kernel2d",
    "register_degradation",
]
