"""Training recipes: ``python -m tunify.recipes.<name> [--preset smoke] [key.sub=value ...]``.

Each recipe is a short module (its objectives, degradation and network) over the shared machinery of
:mod:`tunify.recipes._base` (run by ``_run``, command line in ``_cli``), with its published hyper-parameters in ``recipes/<name>.yaml``:

- ``denoise``: any convolutional denoiser (e.g. CDnCNN-B); ω = (reconstruction, noise preservation)
- ``swinir_sr``: ×4 SwinIR; ω = (reconstruction, GAN)
- ``swinir_dn``, ``nafnet_dn``: colour denoising; ω = (reconstruction, noise preservation)
- ``deblur``: noise + blur; ω = (noise preservation, sharpening), independent
- ``style``: three styles, p = 3
"""

from __future__ import annotations

from tunify.recipes._config import ConfigError, apply_overrides, apply_preset, load_config

RECIPES = ("denoise", "swinir_sr", "swinir_dn", "nafnet_dn", "deblur", "style")

__all__ = ["RECIPES", "ConfigError", "apply_overrides", "apply_preset", "load_config"]
