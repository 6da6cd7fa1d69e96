"""The optional packages ONNX export needs, checked up front so a missing one is one line, not a traceback."""

from __future__ import annotations

import importlib.util

INSTALL = "pip install 'tunify[export]'"


class MissingDependencyError(ImportError):
    """An optional package of ``tunify[export]`` is not installed; the message names the pip command."""


def require(*modules: str, what: str = "ONNX export") -> None:
    """Raise :class:`MissingDependencyError` unless every module in ``modules`` is importable."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(f"{what} needs {' and '.join(missing)}: {INSTALL}")
