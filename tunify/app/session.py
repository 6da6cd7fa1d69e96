"""What the app computes, without any web framework: open a picture, degrade it, run the model, export.

A :class:`Tuner` holds one loaded model (shared by every visitor); a :class:`Picture` is one visitor's
image. A slider move is one pass of the network over the preview (the picture scaled to fit
``preview_side`` output pixels), with the tunable layers mixing their kernels once for that ω; the download
runs the full-resolution image tiled, and is written as ``tunify apply`` writes it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..cli.apply import provenance, write_result
from ..convert import TunableModel
from ..data import ImageReadError, read_image, to_uint8
from ..evaluate import noise_preservation_target, psnr, psnr_eta
from ..hub import build_config, embedded_model_dir, from_pretrained
from ..inference import for_images, infer_scale, network_input, tiled_forward
from .controls import OmegaControls
from .spatial import omega_map, resize_mask
from .synthetic import SyntheticDegradation

MAX_PIXELS = 36_000_000  # about 6000 x 6000: larger pictures are refused (the download would take hours)
PREVIEW_SIDE = 512  # longest side of the preview output, in pixels
PREVIEW_PRECISIONS = ("float32", "bfloat16")
"""The live preview's arithmetic: exact (as ``tunify apply``), or bfloat16 on CPUs with native bfloat16
(about 2× faster for convolutional networks; a few 8-bit levels off in places). Downloads are float32."""


class AppError(ValueError):
    """Bad input in the app (a file, a model name, a value): shown in the page, the server keeps serving."""


@dataclass
class Picture:
    """One visitor's image: the file as uploaded (its format decides the download's) and its pixels."""

    path: Path
    clean: torch.Tensor  # (1, 3, H, W) in [0, 1], full resolution
    _previews: dict[int, torch.Tensor] = field(default_factory=dict, repr=False)

    def fit(self, side: int) -> torch.Tensor:
        """The picture scaled down (antialiased) so that its longest side is at most ``side``; cached."""
        if side not in self._previews:
            h, w = self.clean.shape[-2:]
            factor = side / max(h, w)
            if factor >= 1:
                self._previews[side] = self.clean
            else:
                size = (max(1, round(h * factor)), max(1, round(w * factor)))
                small = F.interpolate(
                    self.clean, size=size, mode="bilinear", antialias=True, align_corners=False
                )
                self._previews[side] = small.clamp(0, 1)
        return self._previews[side]


def open_picture(path: str | Path, max_pixels: int = MAX_PIXELS) -> Picture:
    """Read an uploaded image file, refusing what is not an image or has more than ``max_pixels`` pixels."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            width, height = im.size
    except FileNotFoundError:
        raise AppError(f"{path.name}: no such file") from None
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise AppError(f"{path.name} is not an image that can be read ({error})") from None
    if width * height > max_pixels:
        raise AppError(
            f"{path.name} is {width}x{height} = {width * height / 1e6:.1f} megapixels; the app takes up to "
            f"{max_pixels / 1e6:.0f}: use `tunify apply` (tiled) for larger images"
        )
    try:
        clean = read_image(path)[None]
    except ImageReadError as error:
        raise AppError(str(error)) from None
    return Picture(path, clean)


@dataclass
class Result:
    """What a slider move shows: the input and the output (uint8 (H, W, 3), same size), and the scores."""

    before: np.ndarray
    after: np.ndarray
    scores: str
    seconds: float


@dataclass
class Settings:
    """Everything the person chose, as the page sends it."""

    omega: list[float]  # ω of the picture
    region_omega: list[float] | None = None  # ω of the painted region
    mask: torch.Tensor | None = None  # (h, w) 0/1, painted region at the size of the shown input
    levels: list[float] | None = None  # degradation levels; None: the picture is used as it is


class Tuner:
    """One loaded tunable model and what the page needs to know about it."""

    def __init__(
        self,
        model: TunableModel,
        name: str | None = None,
        preview_side: int = PREVIEW_SIDE,
        preview_precision: str = "float32",
    ) -> None:
        if preview_precision not in PREVIEW_PRECISIONS:
            raise AppError(
                f"preview precision must be one of {PREVIEW_PRECISIONS}, got {preview_precision!r}"
            )
        if preview_precision == "bfloat16" and not bfloat16_is_native():
            raise AppError("a bfloat16 preview needs a CPU with native bfloat16 (AVX-512 BF16 or AMX)")
        self.preview_precision = preview_precision
        self.model = model.eval()
        self.name = name
        config = build_config(model)
        self.config = config
        self.controls = OmegaControls.from_config(config)
        probe, omega = torch.rand(1, 3, 16, 16), torch.tensor(self.controls.default_omega())
        self.runner = for_images(self.model, probe, omega)  # a greyscale network runs channel by channel
        self.scale = infer_scale(self.runner, probe, omega)
        self.degradation = SyntheticDegradation.from_config(config, self.scale)
        self.preview_side = preview_side
        self._eta = _eta_objective(config)

    @classmethod
    def load(cls, name: str | None = None, **kwargs: Any) -> Tuner:
        """The model saved at ``name`` (a save_pretrained folder or Hub repo id), default the embedded one."""
        try:
            model = from_pretrained(name or embedded_model_dir())
            return cls(model, name, **kwargs)
        except AppError:
            raise
        except Exception as error:  # any failure to load is the visitor's to see, not the server's to die of
            raise AppError(f"cannot load the model {name or '(embedded default)'}: {error}") from None

    @property
    def title(self) -> str:
        info = self.config.get("info", {})
        return info.get("name") or f"{self.config['base']['architecture']} (p = {self.config['p']})"

    # -- inputs -------------------------------------------------------------------------------------------

    def inputs(
        self, clean: torch.Tensor, levels: Sequence[float] | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The network input for ``clean`` and the clean reference (None when not degraded synthetically)."""
        if levels is None:
            return clean, None
        try:
            return self.degradation.apply(clean, levels), self.degradation.crop(clean)
        except ValueError as error:
            raise AppError(str(error)) from None

    def preview_clean(self, picture: Picture, levels: Sequence[float] | None) -> torch.Tensor:
        """The picture at preview size: the output is at most ``preview_side``, so a super-resolution
        model's input is ``scale`` times smaller, unless the synthetic degradation downsamples it itself."""
        side = self.preview_side if levels is not None else max(self.preview_side // self.scale, 8)
        return picture.fit(side)

    def preview_input(self, picture: Picture, levels: Sequence[float] | None) -> torch.Tensor:
        """The input the preview runs on (what the brush paints over)."""
        return self.inputs(self.preview_clean(picture, levels), levels)[0]

    def omega(self, settings: Settings, size: tuple[int, int]) -> torch.Tensor:
        """ω for an input of ``size``: (p,) or, with a painted region, the map (1, p, H, W)."""
        if settings.mask is None or settings.region_omega is None:
            return torch.tensor(settings.omega, dtype=torch.float32)
        return omega_map(settings.omega, settings.region_omega, resize_mask(settings.mask, size))

    # -- outputs ------------------------------------------------------------------------------------------

    def run(self, x: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
        """One pass of the network, at the preview's precision."""
        fast = self.preview_precision == "bfloat16"
        try:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
                return self.runner(network_input(self.runner, x), omega=omega).float().contiguous()
        except ValueError as error:  # ω the model refuses (range, shape)
            raise AppError(str(error)) from None
        except RuntimeError as error:  # a picture the network cannot take (smaller than its padding, …)
            raise AppError(_cannot_run(x, error)) from None

    def preview(self, picture: Picture, settings: Settings) -> Result:
        """The result shown after a slider move or a brush stroke: one pass over the preview."""
        start = time.perf_counter()
        x, reference = self.inputs(self.preview_clean(picture, settings.levels), settings.levels)
        omega = self.omega(settings, tuple(x.shape[-2:]))
        y = self.run(x, omega)
        seconds = time.perf_counter() - start
        before = x if self.scale == 1 else F.interpolate(x, scale_factor=self.scale, mode="nearest")
        scores = self.scores(y, x, reference, omega)
        if self.preview_precision != "float32":
            scores += f"  \n_Preview in {self.preview_precision}; the download is computed in float32._"
        return Result(_uint8(before), _uint8(y), scores, seconds)

    def scores(
        self, y: torch.Tensor, x: torch.Tensor, reference: torch.Tensor | None, omega: torch.Tensor
    ) -> str:
        """PSNR (and PSNR_η for noise-preserving denoisers) against the clean picture, as Markdown."""
        if reference is None:
            return "No synthetic degradation: no clean image to score against."
        lines = [f"**PSNR** {psnr(y, reference).item():.2f} dB against the clean image"]
        if self.scale == 1:
            lines[0] += f" (input: {psnr(x, reference).item():.2f} dB)"
        if (
            self._eta is not None
            and self.degradation.scale == 1
            and {k.key for k in self.degradation.knobs} == {"sigma"}
        ):
            index, nu = self._eta
            target = _eta_target(index, nu)
            value = psnr_eta(y, reference, x, omega, target_fn=target).item()
            lines.append(
                f"**PSNR_η** {value:.2f} dB against the clean image plus ω{index + 1}·{nu:g} of the added noise"
            )
        return "  \n".join(lines)

    def export(self, picture: Picture, settings: Settings, directory: str | Path | None = None) -> Path:
        """The full-resolution result (tiled, with a progress bar), written as ``tunify apply`` writes it."""
        x, _ = self.inputs(picture.clean, settings.levels)
        omega = self.omega(settings, tuple(x.shape[-2:]))
        try:
            y = tiled_forward(self.runner, x, omega, progress=True)
        except ValueError as error:
            raise AppError(str(error)) from None
        except RuntimeError as error:
            raise AppError(_cannot_run(x, error)) from None
        fmt = self.controls.format
        text = provenance(self.name, omega=fmt(settings.omega))
        if omega.ndim == 4 and settings.region_omega is not None:
            text["omega_region"] = fmt(settings.region_omega)
        if settings.levels is not None:
            text["degradation"] = self.degradation.describe(settings.levels)
        directory = Path(directory or tempfile.mkdtemp(prefix="tunify-app-"))
        name = f"{picture.path.stem}_omega_{fmt(settings.omega).replace(',', '_')}.png"
        return write_result(y, picture.path, directory / name, text=text)


def bfloat16_is_native() -> bool:
    """Whether this CPU computes bfloat16 convolutions natively (oneDNN on AVX-512 BF16 or AMX)."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def _cannot_run(x: torch.Tensor, error: RuntimeError) -> str:
    h, w = x.shape[-2:]
    return f"the model cannot run on this {w}x{h} picture: {error}"


def _uint8(img: torch.Tensor) -> np.ndarray:
    return to_uint8(img[0]).permute(1, 2, 0).numpy()


def _eta_objective(config: dict[str, Any]) -> tuple[int, float] | None:
    """(ω index, ν) of a noise-preservation objective, for PSNR_η; None when the model has none."""
    info = config.get("info", {})
    for i, obj in enumerate(info.get("objectives", [])):
        if obj.get("name") == "noise_preservation":
            trained = [o for o in info.get("training", {}).get("objectives") or [] if isinstance(o, dict)]
            nu = next((o.get("nu", 0.9) for o in trained if o.get("name") == "noise_preservation"), 0.9)
            return int(obj.get("omega_index", i)), float(nu)
    return None


def _eta_target(index: int, nu: float) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The noise-preserving target y + ω_index·ν·(z − y), per pixel when ω is a map."""

    def target(clean: torch.Tensor, degraded: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
        if omega.ndim == 4:
            return clean + omega[:, index : index + 1] * nu * (degraded - clean)
        return noise_preservation_target(clean, degraded, omega, nu=nu, index=index)

    return target
