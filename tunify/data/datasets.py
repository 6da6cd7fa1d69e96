"""Datasets: random training patches from an image folder, and reproducible whole-image evaluation sets.

Training datasets yield *clean* patches only; the degradation is applied per batch (in the collate function
or on the device by the trainer), so one dataset serves every task and σ/ρ are drawn per sample in a batch.
Every item and batch is a dict with at least "input" (degraded) and "clean".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from tunify.data.degradations import Degradation
from tunify.data.io import IMAGE_EXTENSIONS, list_images, read_image_uint8, to_float

DegradationFn = Callable[
    [torch.Tensor, "torch.Generator | None"], tuple[torch.Tensor, dict[str, torch.Tensor]]
]


class _ImageStore:
    """Decodes the images of a folder on demand, optionally keeping the uint8 pixels in memory."""

    def __init__(self, paths: Sequence[Path], *, cache: bool, gray_to_rgb: bool) -> None:
        self.paths = list(paths)
        self.cache = cache
        self.gray_to_rgb = gray_to_rgb
        self._pixels: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        """uint8 (C, H, W). With DataLoader workers each worker fills its own cache (persistent_workers helps)."""
        if i in self._pixels:
            return self._pixels[i]
        img = read_image_uint8(self.paths[i], gray_to_rgb=self.gray_to_rgb)
        if self.cache:
            self._pixels[i] = img
        return img


def _folder_paths(root: str | Path, extensions: Sequence[str]) -> list[Path]:
    paths = list_images(root, extensions)
    if not paths:
        raise FileNotFoundError(f"no images with extensions {tuple(extensions)} under {root}")
    return paths


def dihedral(img: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th (0..7) of the 8 flips/rotations of an image (..., H, W); k = 0 is the identity."""
    out = torch.rot90(img, k % 4, dims=(-2, -1))
    return out.flip(-1) if k >= 4 else out


class ImageFolderPatches(Dataset):
    """Random square patches of the images under `root` (recursive), with random ×8 dihedral augmentation.

    One epoch visits every image `patches_per_image` times, each time at a fresh random position. Randomness
    comes from torch's global RNG, which DataLoader seeds per worker (base seed + worker id), so runs repeat
    given the loader's `generator` (workers) or `torch.manual_seed` (num_workers=0).

    Args:
        root: image folder (PNG, JPEG, ...; searched recursively).
        patch_size: side of the square patches, in pixels.
        patches_per_image: patches drawn from each image per epoch.
        augment: apply a random flip/rotation (one of 8) to each patch.
        cache: keep decoded images (uint8) in memory; worth it when decoding dominates (JPEG, small sets).
        gray_to_rgb: read greyscale files as 3 identical channels.
    """

    def __init__(
        self,
        root: str | Path,
        patch_size: int,
        *,
        patches_per_image: int = 1,
        augment: bool = True,
        cache: bool = False,
        gray_to_rgb: bool = True,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
    ) -> None:
        if patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {patch_size}")
        if patches_per_image < 1:
            raise ValueError(f"patches_per_image must be >= 1, got {patches_per_image}")
        self.root = Path(root)
        self.patch_size = patch_size
        self.patches_per_image = patches_per_image
        self.augment = augment
        self.images = _ImageStore(_folder_paths(root, extensions), cache=cache, gray_to_rgb=gray_to_rgb)

    def __len__(self) -> int:
        return len(self.images) * self.patches_per_image

    def __getitem__(self, index: int) -> torch.Tensor:
        """A clean float patch (C, patch_size, patch_size) in [0, 1]."""
        i = index // self.patches_per_image
        img = self.images[i]
        p = self.patch_size
        h, w = img.shape[-2:]
        if h < p or w < p:
            raise ValueError(f"image {self.images.paths[i]} ({h}x{w}) is smaller than patch_size {p}")
        top = int(torch.randint(h - p + 1, ()).item())
        left = int(torch.randint(w - p + 1, ()).item())
        patch = img[:, top : top + p, left : left + p]
        if self.augment:
            patch = dihedral(patch, int(torch.randint(8, ()).item()))
        return to_float(patch.contiguous())


def degrade_batch(
    clean: torch.Tensor, degradation: DegradationFn | None, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """Turn a clean batch into the trainer's dict batch: {"input", "clean", **drawn params}.

    Params are per sample: [B] values (σ, ρ, scale) and, for noise, the added noise itself ("noise").

    Call it on the device inside the training loop to degrade on the GPU, or let `DegradeCollate` do it in
    the loader workers. `degradation=None` gives input = clean (identity).
    """
    if degradation is None:
        return {"input": clean, "clean": clean}
    degraded, params = degradation(clean, generator)
    return {"input": degraded, "clean": clean, **params}


class DegradeCollate:
    """DataLoader `collate_fn`: stack clean patches and degrade them (RNG: the worker's seeded global RNG)."""

    def __init__(self, degradation: DegradationFn | None) -> None:
        self.degradation = degradation

    def __call__(self, samples: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return degrade_batch(torch.stack(samples), self.degradation)


def make_patch_loader(
    dataset: Dataset,
    degradation: DegradationFn | None,
    *,
    batch_size: int,
    num_workers: int = 0,
    seed: int | None = None,
    shuffle: bool = True,
    drop_last: bool = True,
    pin_memory: bool = False,
    persistent_workers: bool = False,
) -> DataLoader:
    """A DataLoader of dict batches, degraded in the workers.

    `seed` fixes the shuffling and the workers' RNGs, hence patches and noise; with `num_workers=0` patches and
    noise come from the global RNG instead, so call `torch.manual_seed` for a repeatable run.
    """
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
        collate_fn=DegradeCollate(degradation),
        generator=generator,
        pin_memory=pin_memory,
        persistent_workers=persistent_workers and num_workers > 0,
    )


def _center_crop(img: torch.Tensor, size: int | tuple[int, int] | None, multiple_of: int) -> torch.Tensor:
    h, w = img.shape[-2:]
    if size is not None:
        ch, cw = (size, size) if isinstance(size, int) else size
        ch, cw = min(ch, h), min(cw, w)
        top, left = (h - ch) // 2, (w - cw) // 2
        img = img[..., top : top + ch, left : left + cw]
        h, w = ch, cw
    # crop to a multiple of k from the bottom/right, as SR benchmarks do (keeps the top-left corner aligned)
    return img[..., : h - h % multiple_of, : w - w % multiple_of]


def _label(degradation: DegradationFn | None) -> str:
    if degradation is None:
        return "none"
    return str(degradation) if isinstance(degradation, Degradation) else type(degradation).__name__


class ImageFolderEval(Dataset):
    """Whole images of a folder, each degraded with its own fixed seed (`seed + index`): reproducible evaluation.

    Items are dicts {"input": (C, h, w), "clean": (C, H, W), "name": file stem, "index": int, **params (0-d)}.

    Args:
        root: image folder (searched recursively).
        degradation: a `Degradation` (or any `fn(batch, generator) -> (degraded, params)`); None = identity.
        seed: base seed; image i is degraded with `torch.Generator().manual_seed(seed + i)`.
        crop: optional center crop (int or (h, w)), e.g. for quick evaluations of big images.
        multiple_of: crop H and W down to a multiple of this (use the SR scale for downsampling degradations).
    """

    def __init__(
        self,
        root: str | Path,
        degradation: DegradationFn | None = None,
        seed: int = 0,
        *,
        crop: int | tuple[int, int] | None = None,
        multiple_of: int = 1,
        cache: bool = False,
        gray_to_rgb: bool = True,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
    ) -> None:
        if multiple_of < 1:
            raise ValueError(f"multiple_of must be >= 1, got {multiple_of}")
        self.root = Path(root)
        self.name = self.root.name + _crop_suffix(crop)  # results on crops must not pass for full images
        self.degradation = degradation
        self.degradation_label = _label(degradation)
        self.seed = seed
        self.crop = crop
        self.multiple_of = multiple_of
        self.images = _ImageStore(_folder_paths(root, extensions), cache=cache, gray_to_rgb=gray_to_rgb)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        clean = to_float(_center_crop(self.images[index], self.crop, self.multiple_of))
        item = degrade_batch(clean[None], self.degradation, torch.Generator().manual_seed(self.seed + index))
        out: dict[str, Any] = {k: v[0] for k, v in item.items()}
        out.update(name=self.images.paths[index].stem, index=index)
        return out


def _crop_suffix(crop: int | tuple[int, int] | None) -> str:
    if crop is None:
        return ""
    h, w = (crop, crop) if isinstance(crop, int) else crop
    return f"-crop{h}" if h == w else f"-crop{h}x{w}"


class PairedSRFolder(Dataset):
    """A super-resolution benchmark with stored LR/HR pairs, in the Set5/Set14 layout.

    Reads `root/image_SRF_{scale}/img_NNN_SRF_{scale}_{HR,LR}.png`; items are dicts like `ImageFolderEval`'s
    with "input" = LR, "clean" = HR and "scale".
    """

    def __init__(self, root: str | Path, scale: int, *, gray_to_rgb: bool = True) -> None:
        self.root = Path(root)
        self.scale = scale
        self.name = self.root.name
        self.degradation_label = f"bicubic_x{scale}"
        folder = self.root / f"image_SRF_{scale}"
        hr = sorted(folder.glob(f"*_SRF_{scale}_HR.png")) if folder.is_dir() else []
        if not hr:
            raise FileNotFoundError(f"no *_SRF_{scale}_HR.png files in {folder}")
        lr = [p.with_name(p.name.replace("_HR.png", "_LR.png")) for p in hr]
        missing = [str(p) for p in lr if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"LR images missing for their HR pairs: {missing}")
        self.hr = _ImageStore(hr, cache=False, gray_to_rgb=gray_to_rgb)
        self.lr = _ImageStore(lr, cache=False, gray_to_rgb=gray_to_rgb)

    def __len__(self) -> int:
        return len(self.hr)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        hr, lr = to_float(self.hr[index]), to_float(self.lr[index])
        if hr.shape[-2] != lr.shape[-2] * self.scale or hr.shape[-1] != lr.shape[-1] * self.scale:
            raise ValueError(
                f"{self.lr.paths[index]}: LR {tuple(lr.shape[-2:])} is not HR {tuple(hr.shape[-2:])} / {self.scale}"
            )
        name = self.hr.paths[index].name.replace(f"_SRF_{self.scale}_HR.png", "")
        return {
            "input": lr,
            "clean": hr,
            "scale": torch.tensor(float(self.scale)),
            "name": name,
            "index": index,
        }
