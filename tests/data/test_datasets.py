from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tunify.data import (
    ImageFolderEval,
    ImageFolderPatches,
    PairedSRFolder,
    build_degradation,
    degrade_batch,
    dihedral,
    make_patch_loader,
)

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(40, 50), (37, 64), (45, 45)]):
        sub = tmp_path / ("nested" if i == 2 else "")
        sub.mkdir(exist_ok=True)
        arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(arr).save(sub / f"im{i}.{'jpg' if i == 1 else 'png'}")
    return tmp_path


def test_patches_have_the_right_size_and_count(folder: Path) -> None:
    ds = ImageFolderPatches(folder, 16, patches_per_image=4, cache=True)
    assert len(ds) == 12
    p = ds[5]
    assert p.shape == (3, 16, 16) and p.dtype == torch.float32 and p.min() >= 0 and p.max() <= 1


def test_loader_with_workers_gives_reproducible_dict_batches(folder: Path) -> None:
    ds = ImageFolderPatches(folder, 16, patches_per_image=2)
    deg = build_degradation({"name": "noise", "sigma": [5, 30]})

    def first_batches(seed: int) -> list[dict[str, torch.Tensor]]:
        return list(make_patch_loader(ds, deg, batch_size=3, num_workers=2, seed=seed))

    a, b, c = first_batches(0), first_batches(0), first_batches(1)
    assert len(a) == 2
    assert set(a[0]) == {"input", "clean", "sigma", "noise"}
    assert a[0]["input"].shape == a[0]["clean"].shape == (3, 3, 16, 16) and a[0]["sigma"].shape == (3,)
    assert all(torch.equal(x[k], y[k]) for x, y in zip(a, b, strict=True) for k in x)
    assert not torch.equal(a[0]["clean"], c[0]["clean"])
    assert not torch.equal(a[0]["sigma"], a[1]["sigma"])  # the two workers draw different noise


def test_too_small_image_names_the_file(folder: Path) -> None:
    with pytest.raises(ValueError, match=r"im\d"):
        ImageFolderPatches(folder, 60)[0]


def test_dihedral_gives_eight_distinct_transforms() -> None:
    x = torch.arange(9.0).reshape(1, 3, 3)
    outs = {tuple(dihedral(x, k).flatten().tolist()) for k in range(8)}
    assert len(outs) == 8 and torch.equal(dihedral(x, 0), x)


def test_degrade_batch_identity_and_device_side_use() -> None:
    clean = torch.rand(2, 3, 24, 24)
    assert degrade_batch(clean, None)["input"] is clean
    out = degrade_batch(
        clean, build_degradation({"name": "blur", "rho": 1}), torch.Generator().manual_seed(0)
    )
    assert set(out) == {"input", "clean", "rho"}


def test_eval_folder_is_reproducible_per_image(folder: Path) -> None:
    deg = build_degradation({"name": "noise", "sigma": 25})
    ds = ImageFolderEval(folder, deg, seed=7, crop=32, multiple_of=3)
    item = ds[1]
    assert item["clean"].shape == (3, 30, 30) and item["input"].shape == (3, 30, 30)
    assert item["name"] == "im1" and float(item["sigma"]) == 25.0
    assert torch.equal(
        item["input"], ImageFolderEval(folder, deg, seed=7, crop=32, multiple_of=3)[1]["input"]
    )
    # image i uses seed + i: image 1 at seed 7 == image 0's noise stream at seed 8 (same noise, same shapes)
    noise1 = item["input"] - item["clean"]
    noise0 = ImageFolderEval(folder, deg, seed=8, crop=30)[0]
    assert torch.allclose(noise1, noise0["input"] - noise0["clean"], atol=1e-6)
    assert ds.degradation_label == "noise(sigma=25.0, clip=False)"


def test_eval_folder_name_says_when_images_are_cropped(folder: Path) -> None:
    assert ImageFolderEval(folder).name == folder.name
    assert ImageFolderEval(folder, crop=32).name == f"{folder.name}-crop32"
    assert ImageFolderEval(folder, crop=(32, 48)).name == f"{folder.name}-crop32x48"


@pytest.mark.skipif(
    not (SHARED / "datasets" / "Set14").is_dir(), reason="../shared/datasets/Set14 not available"
)
def test_paired_sr_folder_reads_set14_pairs_including_greyscale() -> None:
    ds = PairedSRFolder(SHARED / "datasets" / "Set14", 3)
    assert len(ds) == 14 and ds.name == "Set14"
    for i in range(len(ds)):
        item = ds[i]
        assert item["clean"].shape[0] == item["input"].shape[0] == 3
        assert item["clean"].shape[-1] == 3 * item["input"].shape[-1]
