"""The pictures the page shows, handed to gradio as PNG files written whole.

Given an array, gradio encodes it into its cache under a name fixed by the content and rewrites that file
in place each time the same picture is shown again (the "before" side after every slider move, the editor's
background, which is the same picture), so a browser fetching it meanwhile can get a truncated response.
Given a file, gradio copies it into its cache once, under a temporary name renamed into place. So the page
writes each picture once, by content, and keeps the most recent few (gradio has its copy by then).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import deque
from pathlib import Path

import numpy as np
from PIL import Image

KEEP = 32  # pictures kept on disk: gradio copies each one while the event that showed it completes


class ShownImages:
    """Writes uint8 (H, W, C) pictures as PNG files in a private folder and returns their paths."""

    def __init__(self, keep: int = KEEP) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="tunify-app-shown-"))
        self.keep = keep
        self._written: deque[Path] = deque()

    def __call__(self, picture: np.ndarray) -> str:
        digest = hashlib.sha1(picture.tobytes())
        digest.update(repr((picture.shape, picture.dtype.str)).encode())
        path = self.folder / f"{digest.hexdigest()[:20]}.png"
        if not path.exists():
            fd, staging = tempfile.mkstemp(dir=self.folder, suffix=".png.partial")
            with os.fdopen(fd, "wb") as f:
                Image.fromarray(picture).save(f, format="PNG")
            os.replace(staging, path)
            self._written.append(path)
            while len(self._written) > self.keep:
                self._written.popleft().unlink(missing_ok=True)
        return str(path)
