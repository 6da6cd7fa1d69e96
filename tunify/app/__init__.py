"""tunify.app: the interactive tuning app (``tunify app``), a gradio page over a tunable model.

``controls`` (ω sliders from config.json), ``synthetic`` (the recipe's degradation at a chosen level),
``spatial`` (the brush's ω map), ``session`` (preview pass, scores, full-resolution export) need no web
framework; ``layout`` and ``serve`` need gradio (``pip install 'tunify[app]'``); ``space`` writes a Hugging
Face Space.
"""

from __future__ import annotations

from .controls import OmegaControls
from .session import AppError, Picture, Settings, Tuner, open_picture
from .spatial import mask_from_layers, omega_map

__all__ = [
    "AppError",
    "OmegaControls",
    "Picture",
    "Settings",
    "Tuner",
    "mask_from_layers",
    "omega_map",
    "open_picture",
]
