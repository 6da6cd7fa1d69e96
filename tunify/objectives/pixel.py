"""Pixel objectives: reconstruction, noise preservation and unsharp-mask sharpening.

Targets follow Maggioni et al. (CVPR 2023), Sec. 4: the noise-preserving target
y_η = y + ω_k·ν·(z − y) keeps a fraction of the input noise, and the sharpening target
ỹ_η = y_η + ω_k·γ·(y_η − g⊛y_η) over-sharpens with a 9×9 Gaussian g (σ = 2.5). The target functions are
public because evaluation needs them to compute PSNR against the ω-dependent target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Batch, Objective, batch_tensor, per_sample, pixel_distance, register_objective


def noise_preservation_target(
    clean: Tensor, noisy: Tensor, strength: float | Tensor, nu: float = 0.9
) -> Tensor:
    """y_η = y + s·ν·(z − y): at s = 0 the clean image, at s = 1 most of the noise kept.

    Args:
        clean: (B, 3, H, W) clean image y.
        noisy: (B, 3, H, W) noisy input z.
        strength: scalar or (B,) ω_k.
        nu: fraction of the noise kept at full strength (the paper's ν = 0.9).
    """
    if clean.shape != noisy.shape:
        raise ValueError(f"clean {tuple(clean.shape)} and noisy {tuple(noisy.shape)} shapes differ")
    return clean + per_sample(strength, clean) * nu * (noisy - clean)


def noise_only_input(batch: Batch, clean: Tensor, noisy_key: str, like: Tensor) -> Tensor:
    """y + n: the clean image plus only the noise the degradation added (``batch["noise"]``), so that a
    noise-preserving target keeps the noise but not the blur; the degraded input itself when the batch does not
    record its noise (then z − y is taken as the noise)."""
    noise = batch.get("noise")
    if isinstance(noise, Tensor) and noise.shape == clean.shape:
        return clean + noise.to(device=like.device, dtype=like.dtype)
    return batch_tensor(batch, noisy_key, like)


def gaussian_kernel(
    size: int = 9,
    sigma: float = 2.5,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | None = None,
) -> Tensor:
    """Normalised 2-D Gaussian (size, size), the blur g of the unsharp mask, computed on ``device`` (a copy
    from the host would make every training step wait for the GPU)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd integer, got {size}")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g2 = g[:, None] * g[None, :]
    return g2 / g2.sum()


def gaussian_blur(image: Tensor, size: int = 9, sigma: float = 2.5) -> Tensor:
    """Per-channel Gaussian blur with reflect padding (keeps the size; needs H, W > size // 2)."""
    channels = image.shape[1]
    kernel = gaussian_kernel(size, sigma, dtype=image.dtype, device=image.device)
    kernel = kernel.expand(channels, 1, size, size)
    pad = size // 2
    return F.conv2d(F.pad(image, (pad, pad, pad, pad), mode="reflect"), kernel, groups=channels)


def unsharp_mask_target(
    image: Tensor, strength: float | Tensor, gamma: float = 8.0, size: int = 9, sigma: float = 2.5
) -> Tensor:
    """ỹ = y + s·γ·(y − g⊛y), not clamped; ``image`` is y (or y_η in the joint noise+blur setting)."""
    return image + per_sample(strength, image) * gamma * (image - gaussian_blur(image, size, sigma))


@register_objective("reconstruction")
class Reconstruction(Objective):
    """L1 (or MSE, ``distance="mse"``) to the clean image: the fidelity end of most tuning ranges."""

    def __init__(self, *, target_key: str = "clean", distance: str = "l1") -> None:
        super().__init__()
        self.target_key, self.distance = target_key, distance
        self._distance = pixel_distance(distance)

    def forward(self, output: Tensor, batch: Batch, omega: Tensor, index: int) -> Tensor:
        return self._distance(output, batch_tensor(batch, self.target_key, output))


@register_objective("noise_preservation")
class NoisePreservation(Objective):
    """L1 (or ``distance="mse"``) to y_η = y + ω_k·ν·(z − y), so ω_k tunes how much noise is left in.

    ``omega_index`` picks k; by default the ω entry that weights this objective in the multi-loss.
    """

    def __init__(
        self,
        *,
        nu: float = 0.9,
        omega_index: int | None = None,
        clean_key: str = "clean",
        noisy_key: str = "input",
        distance: str = "l1",
    ) -> None:
        super().__init__(omega_index=omega_index)
        if not 0.0 <= nu <= 1.0:
            raise ValueError(f"nu must be in [0, 1], got {nu}")
        self.nu, self.clean_key, self.noisy_key = nu, clean_key, noisy_key
        self.distance, self._distance = distance, pixel_distance(distance)

    def forward(self, output: Tensor, batch: Batch, omega: Tensor, index: int) -> Tensor:
        clean = batch_tensor(batch, self.clean_key, output)
        noisy = noise_only_input(batch, clean, self.noisy_key, output)
        target = noise_preservation_target(clean, noisy, self.strength(omega, index), self.nu)
        return self._distance(output, target)

    def extra_repr(self) -> str:
        return ", ".join(s for s in (f"nu={self.nu}", super().extra_repr()) if s)


@register_objective("unsharp_mask")
class UnsharpMask(Objective):
    """L1 (or ``distance="mse"``) to ỹ = y_η + ω_k·γ·(y_η − g⊛y_η): ω_k sharpens beyond the ground truth.

    y_η is the clean image, or with ``noise_omega_index`` the noise-preserving target driven by that ω entry
    (the paper's joint denoising+deblurring setting, where the two ω entries are independent).
    """

    def __init__(
        self,
        *,
        gamma: float = 8.0,
        kernel_size: int = 9,
        sigma: float = 2.5,
        omega_index: int | None = None,
        noise_omega_index: int | None = None,
        nu: float = 0.9,
        clean_key: str = "clean",
        noisy_key: str = "input",
        distance: str = "l1",
    ) -> None:
        super().__init__(omega_index=omega_index)
        gaussian_kernel(kernel_size, sigma)  # validates size and sigma early
        if noise_omega_index is not None and noise_omega_index < 0:
            raise ValueError(f"noise_omega_index must be >= 0, got {noise_omega_index}")
        self.gamma, self.kernel_size, self.sigma = gamma, kernel_size, sigma
        self.noise_omega_index, self.nu = noise_omega_index, nu
        self.clean_key, self.noisy_key = clean_key, noisy_key
        self.distance, self._distance = distance, pixel_distance(distance)

    def forward(self, output: Tensor, batch: Batch, omega: Tensor, index: int) -> Tensor:
        base = batch_tensor(batch, self.clean_key, output)
        if self.noise_omega_index is not None:
            if self.noise_omega_index >= omega.shape[1]:
                raise ValueError(
                    f"noise_omega_index {self.noise_omega_index} out of range for p={omega.shape[1]}"
                )
            noisy = noise_only_input(batch, base, self.noisy_key, output)
            base = noise_preservation_target(base, noisy, omega[:, self.noise_omega_index], self.nu)
        target = unsharp_mask_target(
            base, self.strength(omega, index), self.gamma, self.kernel_size, self.sigma
        )
        return self._distance(output, target)

    def extra_repr(self) -> str:
        parts = [f"gamma={self.gamma}", f"kernel_size={self.kernel_size}", f"sigma={self.sigma}"]
        if self.distance != "l1":
            parts.append(f"distance={self.distance}")
        if self.noise_omega_index is not None:
            parts.append(f"noise_omega_index={self.noise_omega_index}, nu={self.nu}")
        return ", ".join(s for s in (*parts, super().extra_repr()) if s)
