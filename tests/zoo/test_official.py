"""Official checkpoints by name: the cache, the download (faked: no network in tests) and the errors."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
from torch import nn

from tunify import zoo

SWINIR_X4 = "001_classicalSR_DF2K_s64w8_SwinIR-M_x4.pth"


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def _tiny_stack() -> dict[str, torch.Tensor]:
    """A small bare DnCNN stack, standing in for a downloaded file (zoo.load reads any architecture)."""
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 3))
    return body.state_dict()


def test_every_entry_names_a_registered_config_and_a_source() -> None:
    for name, entry in zoo.OFFICIAL.items():
        assert entry.filename == name
        assert zoo.config(entry.config).architecture in ("SwinIR", "NAFNet")
        assert entry.url is None or entry.url.endswith("/" + name)
    assert (
        zoo.OFFICIAL[SWINIR_X4].url
        == f"https://github.com/JingyunLiang/SwinIR/releases/download/v0.0/{SWINIR_X4}"
    )
    assert zoo.OFFICIAL["NAFNet-SIDD-width32.pth"].config == "nafnet_sidd_w32"


def test_cache_follows_torch_home(torch_home: Path) -> None:
    assert zoo.cache_dir() == torch_home


def test_download_once_into_the_cache_then_load(torch_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_download(url: str, dst: str, progress: bool = True) -> None:
        calls.append((url, Path(dst)))
        torch.save(_tiny_stack(), dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    model = zoo.load(SWINIR_X4)
    assert calls == [(zoo.OFFICIAL[SWINIR_X4].url, torch_home / SWINIR_X4)]
    assert zoo.describe(model)["architecture"] == "DnCNN"  # what the fake file holds
    assert zoo.fetch(SWINIR_X4) == torch_home / SWINIR_X4 and len(calls) == 1  # cached: no second download


def test_local_files_only_and_failed_download_say_what_to_do(
    torch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(url: str, dst: str, progress: bool = True) -> None:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    target = str(torch_home / SWINIR_X4)
    with pytest.raises(zoo.CheckpointNotFoundError, match="local files only") as error:
        zoo.fetch(SWINIR_X4, local_files_only=True)
    assert target in str(error.value)
    with pytest.raises(zoo.CheckpointNotFoundError, match=r"download failed.*Name or service") as error:
        zoo.load(SWINIR_X4)
    assert zoo.OFFICIAL[SWINIR_X4].url in str(error.value) and target in str(error.value)
    assert not torch_home.exists() or not any(torch_home.iterdir())


def test_no_direct_link_points_to_the_authors_page(torch_home: Path) -> None:
    with pytest.raises(zoo.CheckpointNotFoundError, match="without a direct link") as error:
        zoo.fetch("NAFNet-SIDD-width32.pth")
    assert "megvii-research/NAFNet" in str(error.value) and str(torch_home) in str(error.value)
    torch_home.mkdir(parents=True)
    torch.save(_tiny_stack(), torch_home / "NAFNet-SIDD-width32.pth")  # put there by hand
    assert zoo.fetch("NAFNet-SIDD-width32.pth") == torch_home / "NAFNet-SIDD-width32.pth"


def test_unknown_names_and_paths_are_not_downloaded(tmp_path: Path) -> None:
    with pytest.raises(zoo.CheckpointNotFoundError, match=r"no such file.*close name: 001_classicalSR"):
        zoo.fetch("001_classicalSR_DF2K_s64w8_SwinIR-M_x5.pth")
    with pytest.raises(zoo.CheckpointNotFoundError, match="no such file"):
        zoo.fetch(tmp_path / SWINIR_X4)  # a path elsewhere is a path, not a name
