"""tunify.data: image I/O, seeded degradations and datasets (L1: depends on torch only)."""

from __future__ import annotations

from tunify.data.datasets import (
    DegradeCollate,
    ImageFolderEval,
    ImageFolderPatches,
    PairedSRFolder,
    degrade_batch,
    dihedral,
    make_patch_loader,
)
from tunify.data.degradations import (
    BicubicDownsample,
    Chain,
    Degradation,
    GaussianBlur,
    GaussianNoise,
    add_gaussian_noise,
    bicubic_downsample,
    build_degradation,
    degradation_names,
    gaussian_blur,
    gaussian_kernel2d,
    register_degradation,
)
from tunify.data.io import (
    ImageReadError,
    grey_bit_depth,
    list_images,
    read_alpha,
    read_image,
    to_uint8,
    write_image,
)

__all__ = [
    "BicubicDownsample",
    "Chain",
    "Degradation",
    "DegradeCollate",
    "GaussianBlur",
    "GaussianNoise",
    "ImageFolderEval",
    "ImageFolderPatches",
    "ImageReadError",
    "PairedSRFolder",
    "add_gaussian_noise",
    "bicubic_downsample",
    "build_degradation",
    "degradation_names",
    "degrade_batch",
    "dihedral",
    "gaussian_blur",
    "gaussian_kernel2d",
    "grey_bit_depth",
    "list_images",
    "make_patch_loader",
    "read_alpha",
    "read_image",
    "register_degradation",
    "to_uint8",
    "write_image",
]
