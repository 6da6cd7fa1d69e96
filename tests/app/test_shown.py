"""The pictures the page shows are PNG files written once, by content, and only the most recent are kept."""

from __future__ import annotations

import numpy as np
from PIL import Image

from tunify.app.shown import ShownImages


def test_a_picture_is_written_once_by_content_and_old_ones_are_dropped() -> None:
    shown = ShownImages(keep=2)
    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 256, (5, 7, 3), dtype=np.uint8) for _ in range(3)]
    first = shown(pictures[0])
    mtime = shown.folder.joinpath(first).stat().st_mtime_ns
    assert shown(pictures[0].copy()) == first  # the same picture: the same file, not rewritten
    assert shown.folder.joinpath(first).stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(np.asarray(Image.open(first)), pictures[0])
    paths = [shown(p) for p in pictures[1:]]
    assert len(set(paths)) == 2 and first not in paths
    assert sorted(p.name for p in shown.folder.iterdir()) == sorted(p.rsplit("/", 1)[1] for p in paths)
    turned = shown(pictures[0].reshape(7, 5, 3))  # the same bytes in another shape: another file
    assert turned != first and np.asarray(Image.open(turned)).shape == (7, 5, 3)
