"""Run logs: one JSON object per log step in ``log.jsonl``, mirrored to TensorBoard when it is installed.

Training records have the keys ``step`` (updates done), ``loss`` (mean over the steps since the previous
record), ``terms`` (mean of each named loss term, e.g. ``{"l1": ..., "lpips": ...}``), ``lr`` (base
group) and ``images_per_s`` (global throughput); adversarial runs add ``d_loss``. Evaluation records have ``step`` and ``eval`` (the dict returned by ``eval_fn``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunify._atomic import atomic_write


class RunLogger:
    """Append-only JSONL log plus an optional TensorBoard writer (never required).

    Args:
        out_dir: run folder; the log is ``out_dir/log.jsonl`` and TensorBoard events go to ``out_dir/tb``.
        tensorboard: try to open a TensorBoard writer.
    """

    def __init__(self, out_dir: str | os.PathLike, tensorboard: bool = True) -> None:
        self.path = Path(out_dir) / "log.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tb = _tensorboard_writer(Path(out_dir) / "tb") if tensorboard else None

    def log(self, record: Mapping[str, Any]) -> None:
        """Append one record (flushed at once, so a killed run keeps its log)."""
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            step = int(record["step"])
            for key, value in _flatten(record).items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(key, value, step)
            self._tb.flush()

    def truncate(self, after_step: int) -> None:
        """Drop records past ``after_step`` (and a torn last line): a resumed run re-logs those steps."""
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("step", 0) <= after_step:
                kept.append(line + "\n")
        atomic_write(self.path, lambda tmp: tmp.write_text("".join(kept)))

    def close(self) -> None:
        """Close the TensorBoard writer."""
        if self._tb is not None:
            self._tb.close()


def _flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _tensorboard_writer(log_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # the tensorboard package is optional
        return None
    return SummaryWriter(log_dir=str(log_dir))


class RunningMeans:
    """Means of the loss and its terms since the last log record, plus the throughput (no per-step sync)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start a new window."""
        self.steps = 0
        self.sums: dict[str, Any] = {}
        self.start = time.perf_counter()

    def add(self, values: Mapping[str, Any]) -> None:
        """Accumulate one step's values (tensors are summed on their device and read once per window)."""
        self.steps += 1
        for key, value in values.items():
            value = value.detach() if hasattr(value, "detach") else value
            self.sums[key] = self.sums[key] + value if key in self.sums else value

    def means(self) -> dict[str, float]:
        """Window means as Python floats."""
        return {key: float(total) / max(self.steps, 1) for key, total in self.sums.items()}

    def seconds(self) -> float:
        """Wall time since the window started."""
        return time.perf_counter() - self.start
