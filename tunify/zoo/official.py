"""Where the authors publish the official checkpoints, and a cached download of them.

`fetch("001_classicalSR_DF2K_s64w8_SwinIR-M_x4.pth")` gives a local path: the copy in the torch hub cache
(`$TORCH_HOME/hub/checkpoints`, where torchvision and timm keep theirs), downloaded from the authors' release
on first use, with a progress bar and atomically (torch.hub writes a temporary file and moves it into
place). NAFNet's authors publish on Google Drive and Baidu, which have no stable file links: for those the
error says where to get the file and where to put it. Nothing here unpickles anything; `zoo.load` reads the
file safely.
"""

from __future__ import annotations

import difflib
import os
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import CheckpointNotFoundError

SWINIR_RELEASE = "https://github.com/JingyunLiang/SwinIR/releases/download/v0.0/"
SWINIR_PAGE = "https://github.com/JingyunLiang/SwinIR/releases/tag/v0.0"
NAFNET_PAGE = "https://github.com/megvii-research/NAFNet#results-and-pre-trained-models"


@dataclass(frozen=True)
class OfficialCheckpoint:
    """One published checkpoint: its file name, the zoo config it fits, and where it can be had."""

    filename: str
    config: str  # the tunify.zoo.create name of its architecture
    page: str  # where the authors list it
    url: str | None = None  # a direct download link, where the authors give one


def _swinir(filename: str, config: str) -> OfficialCheckpoint:
    return OfficialCheckpoint(filename, config, SWINIR_PAGE, SWINIR_RELEASE + filename)


_ENTRIES = [
    *(
        _swinir(f"001_classicalSR_DF2K_s64w8_SwinIR-M_x{s}.pth", f"swinir_classical_x{s}")
        for s in (2, 3, 4, 8)
    ),
    *(
        _swinir(f"001_classicalSR_DIV2K_s48w8_SwinIR-M_x{s}.pth", f"swinir_classical_x{s}")
        for s in (2, 3, 4, 8)
    ),
    *(
        _swinir(f"002_lightweightSR_DIV2K_s64w8_SwinIR-S_x{s}.pth", f"swinir_lightweight_x{s}")
        for s in (2, 3, 4)
    ),
    _swinir("003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_GAN.pth", "swinir_real_x4"),
    _swinir("003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN.pth", "swinir_real_x4_large"),
    *(_swinir(f"004_grayDN_DFWB_s128w8_SwinIR-M_noise{n}.pth", "swinir_gray_dn") for n in (15, 25, 50)),
    *(_swinir(f"005_colorDN_DFWB_s128w8_SwinIR-M_noise{n}.pth", "swinir_color_dn") for n in (15, 25, 50)),
    *(
        OfficialCheckpoint(f"NAFNet-{task}-width{w}.pth", f"nafnet_{task.lower()}_w{w}", NAFNET_PAGE)
        for task in ("SIDD", "GoPro")
        for w in (32, 64)
    ),
]
#: Official checkpoints by file name.
OFFICIAL: dict[str, OfficialCheckpoint] = {entry.filename: entry for entry in _ENTRIES}


def cache_dir() -> Path:
    """Where downloaded checkpoints are kept: torch hub's ``checkpoints`` folder (honours ``$TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def fetch(name: str | os.PathLike[str], *, local_files_only: bool = False, progress: bool = True) -> Path:
    """A local path for ``name``: an existing file as is, else an official checkpoint from the cache or its
    release (downloaded once). Anything else is a :class:`CheckpointNotFoundError` that says what to do."""
    path = Path(name)
    if path.is_file():
        return path
    entry = OFFICIAL.get(str(name))
    if entry is None:
        close = difflib.get_close_matches(path.name, list(OFFICIAL), n=3, cutoff=0.6)
        hint = f" (official checkpoints with a close name: {', '.join(close)})" if close else ""
        raise CheckpointNotFoundError(f"checkpoint {str(name)!r}: no such file{hint}")
    cached = cache_dir() / entry.filename
    if cached.is_file():
        return cached
    get_it = f"download it from {entry.url or entry.page} to {cached}, or pass the path of a copy"
    if entry.url is None:
        raise CheckpointNotFoundError(
            f"{entry.filename} is not in the cache and its authors publish it without a direct link: {get_it}"
        )
    if local_files_only:
        raise CheckpointNotFoundError(f"{entry.filename} is not in the cache (local files only): {get_it}")
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(entry.url, str(cached), progress=progress)
    except (OSError, urllib.error.URLError) as error:
        raise CheckpointNotFoundError(f"{entry.filename}: the download failed ({error}): {get_it}") from None
    return cached
