"""What a conversion changes, as rows a person can read."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReportRow:
    """One converted layer, module or tensor."""

    name: str
    kind: str  # "layer": a registered layer type; "module": kept its own forward; "tensor": a named tensor
    type: str
    shape: str
    tunable_class: str
    params_added: int
    aliases: tuple[str, ...] = ()  # other names of a shared layer (converted once, reached by each)
    # how an ω map acts: "per pixel" (exactly), "per token" (a Linear layer: per pixel where its input holds
    # the image's tokens or a Swin block's windows, else the average), or through its "average"
    spatial: str = "average"

    @property
    def shown_name(self) -> str:
        return self.name + "".join(f" (= {alias})" for alias in self.aliases)


class ConversionReport(list[ReportRow]):
    """The rows of a conversion (or of a dry run), printable as a table."""

    @property
    def params_added(self) -> int:
        return sum(row.params_added for row in self)

    def names(self) -> list[str]:
        return [row.name for row in self]

    def __str__(self) -> str:
        header = ("name", "kind", "type", "shape", "tunable", "params added", "ω map")
        rows = [
            (r.shown_name, r.kind, r.type, r.shape, r.tunable_class, f"{r.params_added:,}", r.spatial)
            for r in self
        ]
        widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
        lines = [
            "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)) for line in (header, *rows)
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(f"{len(self)} converted, {self.params_added:,} parameters added")
        return "\n".join(lines)
