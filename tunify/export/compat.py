"""Export-time stand-ins for third-party functions whose shape arithmetic fixes a dimension.

spandrel's SwinIR recovers the batch size in ``window_reverse`` as ``int(n / (H * W / ws / ws))``: a float
division that torch.export can only evaluate by fixing the batch size of the exported graph. The stand-in
computes the same integer with integer division (``H`` and ``W`` are multiples of ``ws`` there), so the
batch stays dynamic. The original is put back when the export ends.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from torch import Tensor


def _swinir_window_reverse(windows: Tensor, window_size: int, H: int, W: int) -> Tensor:
    """(n·B, ws, ws, C) windows → (B, H, W, C), the batch found by integer division."""
    rows, cols = H // window_size, W // window_size
    b = windows.shape[0] // (rows * cols)
    x = windows.view(b, rows, cols, window_size, window_size, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(b, H, W, -1)


#: (module, function name, stand-in)
PATCHES = (("spandrel.architectures.SwinIR.__arch.SwinIR", "window_reverse", _swinir_window_reverse),)


@contextmanager
def _replaced(module_name: str, name: str, replacement: object) -> Iterator[None]:
    try:
        module = importlib.import_module(module_name)
    except ImportError:  # that architecture is not installed: nothing to patch
        yield
        return
    original = getattr(module, name)
    setattr(module, name, replacement)
    try:
        yield
    finally:
        setattr(module, name, original)


@contextmanager
def export_friendly() -> Iterator[None]:
    """Swap in every stand-in of :data:`PATCHES` for the duration of the block."""
    with ExitStack() as stack:
        for module_name, name, replacement in PATCHES:
            stack.enter_context(_replaced(module_name, name, replacement))
        yield
