from __future__ import annotations

import pytest

from tunify.train import TrainConfig


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("total_steps", 0),
        ("batch_size", -1),
        ("optimizer", "sgd"),
        ("lr", 0.0),
        ("betas", (0.9, 1.0)),
        ("weight_decay", -1e-4),
        ("phi_lr_mult", 0.0),
        ("schedule", "linear"),
        ("warmup_steps", 100_000),
        ("min_lr_ratio", 1.5),
        ("milestones", (10, 5)),
        ("gamma", 0.0),
        ("ema_decay", 1.0),
        ("grad_clip", 0.0),
        ("precision", "fp8"),
        ("discriminator_lr", -1.0),
        ("checkpoint_every", 0),
        ("keep_checkpoints", 0),
        ("log_every", 0),
        ("seed", -1),
        ("device", "tpu"),
    ],
)
def test_invalid_field_raises_naming_it(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_dict_round_trip_and_unknown_keys():
    config = TrainConfig(total_steps=10, milestones=(3, 6), schedule="multistep", ema_decay=0.9)
    data = config.to_dict()
    assert data["milestones"] == [3, 6]
    assert TrainConfig.from_dict(data) == config
    with pytest.warns(UserWarning, match="from_the_future"):
        assert TrainConfig.from_dict({**data, "from_the_future": 1}) == config
