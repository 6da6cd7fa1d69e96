"""ω sliders from a model's config: one slider for a two-entry trade-off, consistent simplex sliders, free ones."""

from __future__ import annotations

import pytest

from tunify.app import OmegaControls


def config(p: int, independent: bool = False, objectives: int | None = None) -> dict:
    n = p if objectives is None else objectives
    return {
        "p": p,
        "conversion": {"independent": independent},
        "info": {"objectives": [{"name": f"obj{i}", "description": f"does {i}"} for i in range(n)]},
    }


def test_two_entry_trade_off_is_one_slider_labelled_from_the_config() -> None:
    c = OmegaControls.from_config(config(2))
    (slider,) = c.sliders()
    assert c.mode == "trade-off" and "obj0" in slider.label and "obj1" in slider.label
    assert "does 0" in slider.info and "does 1" in slider.info
    assert c.omega([0.8]) == pytest.approx([0.2, 0.8])
    assert c.values_for([0.2, 0.8]) == pytest.approx([0.8])


def test_three_simplex_sliders_stay_consistent() -> None:
    c = OmegaControls.from_config(config(3))
    assert c.mode == "simplex" and len(c.sliders()) == 3
    moved = c.rebalance([0.7, 1 / 3, 1 / 3], 0)  # first slider moved to 0.7: the others share 0.3
    assert moved == pytest.approx([0.7, 0.15, 0.15]) and sum(moved) == pytest.approx(1)
    assert c.rebalance([0.5, 0.5, 0.0], 1) == pytest.approx([0.5, 0.5, 0.0])  # proportions kept
    assert c.rebalance([0.4, 0.0, 0.0], 0) == pytest.approx([0.4, 0.3, 0.3])  # all zero: shared equally
    assert c.omega([0.2, 0.2, 0.4]) == pytest.approx([0.25, 0.25, 0.5])
    with pytest.raises(ValueError, match="sum to 1"):
        c.values_for([0.5, 0.5, 0.5])


def test_independent_models_get_free_sliders() -> None:
    c = OmegaControls.from_config(config(2, independent=True))
    assert c.mode == "independent" and len(c.sliders()) == 2
    assert c.omega([0.0, 1.0]) == [0.0, 1.0] and c.rebalance([0.9, 0.9], 0) == [0.9, 0.9]
    assert c.values_for([1.0, 1.0]) == [1.0, 1.0]


def test_undocumented_entries_are_still_named() -> None:
    c = OmegaControls.from_config(config(3, objectives=0))
    assert [s.label for s in c.sliders()] == ["ω1: objective 1", "ω2: objective 2", "ω3: objective 3"]


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan"), "x"])
def test_out_of_range_values_name_the_slider(bad: object) -> None:
    c = OmegaControls.from_config(config(2))
    with pytest.raises(ValueError, match=r"ω: obj0 ↔ obj1 must"):
        c.omega([bad])
