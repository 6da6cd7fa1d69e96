from __future__ import annotations

import json
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader
from train_toys import DictDataset, ToyTunable, make_model, multi_loss, uniform_sampler

from tunify.train import TrainConfig, Trainer, load_weights
from tunify.train.trainer import _resumable_loader


class _Killed(RuntimeError):
    pass


class KillAt:
    """Wraps a loss and raises on its ``n``-th call: the process dies in the middle of a step."""

    def __init__(self, loss_fn, n: int) -> None:
        self.loss_fn, self.n, self.calls = loss_fn, n, 0

    def __call__(self, output, batch, omega):
        self.calls += 1
        if self.calls == self.n:
            raise _Killed
        return self.loss_fn(output, batch, omega)

    def __getattr__(self, name):  # the wrapped loss's discriminator, if any
        return getattr(self.__dict__["loss_fn"], name)


class AdversarialLoss:
    """The multi-loss plus a tiny discriminator, in the ``discriminator`` / ``discriminator_loss`` spelling."""

    def __init__(self) -> None:
        torch.manual_seed(1)
        self.discriminator = nn.Sequential(
            nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 1)
        )

    def __call__(self, output, batch, omega):
        loss, terms = multi_loss(output, batch, omega)
        adv = nn.functional.softplus(-self.discriminator(output)).mean()
        return loss + 0.01 * adv, {**terms, "adv": adv.detach()}

    def discriminator_loss(self, output, batch):
        real, fake = self.discriminator(batch["clean"]), self.discriminator(output)
        return nn.functional.softplus(-real).mean() + nn.functional.softplus(fake).mean()


def _config(**overrides) -> TrainConfig:
    overrides.setdefault("warmup_steps", min(2, overrides.get("total_steps", 8) - 1))
    base = dict(
        total_steps=8,
        batch_size=4,
        lr=1e-2,
        warmup_steps=2,
        schedule="cosine",
        phi_lr_mult=3.0,
        ema_decay=0.9,
        grad_clip=1.0,
        checkpoint_every=3,
        log_every=2,
        progress=False,
        device="cpu",
        seed=5,
    )
    return TrainConfig(**{**base, **overrides})


def _read_log(out_dir):
    return [json.loads(line) for line in (out_dir / "log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("adversarial", [False, True])
def test_resume_after_kill_matches_uninterrupted_run(tmp_path, adversarial):
    def loss_fn():
        return AdversarialLoss() if adversarial else multi_loss

    config, data = _config(), DictDataset()
    straight = Trainer(make_model(), loss_fn(), uniform_sampler, data, config, tmp_path / "a")
    straight.fit()

    killed_loss = KillAt(loss_fn(), n=8)  # dies inside step 8, after the checkpoint at step 6
    with pytest.raises(_Killed):
        Trainer(make_model(), killed_loss, uniform_sampler, data, config, tmp_path / "b").fit()
    partial = tmp_path / "b" / "checkpoints" / ".step_00000009.x.tmp"
    partial.mkdir()
    (partial / "state.pt").write_bytes(b"torn write")
    torch.manual_seed(123)  # a new process starts with other RNG states
    resumed = Trainer(
        make_model(seed=9), killed_loss.loss_fn, uniform_sampler, data, config, tmp_path / "b", resume=True
    )
    assert resumed.step == 6
    resumed.fit()

    for (name, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    for key, value in straight.ema.shadow.items():
        assert torch.equal(value, resumed.ema.shadow[key]), key
    if adversarial:
        for a, b in zip(straight.discriminator.parameters, resumed.discriminator.parameters, strict=True):
            assert torch.equal(a, b)
    losses = [(r["step"], r["loss"]) for r in _read_log(tmp_path / "a")]
    assert [(r["step"], r["loss"]) for r in _read_log(tmp_path / "b")] == losses
    assert straight.optimizer.param_groups[1]["lr"] == resumed.optimizer.param_groups[1]["lr"]


def test_resuming_warns_about_what_the_run_learns_not_how_it_runs(tmp_path):
    """More loader workers or another progress setting on resume is routine (the GPU advice); another
    learning rate changes the run and is named."""
    data = DictDataset()
    Trainer(make_model(), multi_loss, uniform_sampler, data, _config(total_steps=3), tmp_path).fit()

    def resume(**overrides) -> list[str]:
        config = _config(total_steps=3, **overrides)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            Trainer(make_model(), multi_loss, uniform_sampler, data, config, tmp_path, resume=True)
        return [str(w.message) for w in caught if "different config" in str(w.message)]

    assert resume(num_workers=1, log_every=1, checkpoint_every=1, keep_checkpoints=1) == []
    (message,) = resume(lr=5e-3, num_workers=1)
    assert message.endswith("['lr']")


def test_loss_decreases_and_log_has_documented_keys(tmp_path):
    config = _config(total_steps=40, log_every=10, lr=2e-2, checkpoint_every=100, warmup_steps=0)
    trainer = Trainer(make_model(), multi_loss, uniform_sampler, DictDataset(), config, tmp_path)
    trainer.fit()
    records = _read_log(tmp_path)
    assert [r["step"] for r in records] == [10, 20, 30, 40]
    for record in records:
        assert set(record) == {"step", "loss", "terms", "lr", "images_per_s"}
        assert set(record["terms"]) == {"rec", "id"}
        assert record["images_per_s"] > 0
    assert records[-1]["loss"] < 0.5 * records[0]["loss"]
    assert trainer.checkpoints.steps() == [40]


def test_exported_weights_and_eval_use_the_ema(tmp_path):
    seen = {}

    def eval_fn(model, step):
        seen[step] = {k: v.clone() for k, v in model.state_dict().items()}
        return {"score": float(step)}

    config = _config(eval_every=4, checkpoint_every=100)
    trainer = Trainer(
        make_model(), multi_loss, uniform_sampler, DictDataset(), config, tmp_path, eval_fn=eval_fn
    )
    trainer.fit()
    exported = load_weights(tmp_path / "weights.safetensors")
    for key, value in trainer.ema.shadow.items():
        assert torch.equal(exported[key], value) and torch.equal(seen[8][key], value)
    current = trainer.model.state_dict()["base_model.conv1.weight.1"]
    assert not torch.equal(current, trainer.ema.shadow["base_model.conv1.weight.1"])
    assert trainer.model.training
    evals = [r for r in _read_log(tmp_path) if "eval" in r]
    assert [(r["step"], r["eval"]["score"]) for r in evals] == [(4, 4.0), (8, 8.0), (8, 8.0)]


def test_dataloader_input_is_rebatched_by_the_trainer(tmp_path):
    config = _config(total_steps=3, ema_decay=None)
    data = DictDataset()
    a = Trainer(make_model(), multi_loss, uniform_sampler, data, config, tmp_path / "a")
    a.fit()
    loader = DataLoader(data, batch_size=4, shuffle=True)
    b = Trainer(make_model(), multi_loss, uniform_sampler, loader, config, tmp_path / "b")
    b.fit()
    for x, y in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(x, y)


def test_rebatching_warns_only_about_a_batch_size_that_is_not_the_configured_one(tmp_path):
    config = _config(total_steps=1, ema_decay=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Trainer(
            make_model(),
            multi_loss,
            uniform_sampler,
            DataLoader(DictDataset(), batch_size=4),
            config,
            tmp_path / "a",
        )
    with pytest.warns(UserWarning, match=r"train_loader batch_size 3 replaced by config.batch_size 4"):
        Trainer(
            make_model(),
            multi_loss,
            uniform_sampler,
            DataLoader(DictDataset(), batch_size=3),
            config,
            tmp_path / "b",
        )


@pytest.mark.parametrize("given", ["dataset", "loader"])
def test_batches_for_a_gpu_come_pinned(given):
    """Pageable batches would make every step wait for the GPU to finish the previous one."""
    config = _config(total_steps=1, ema_decay=None)
    data = DictDataset() if given == "dataset" else DataLoader(DictDataset(), batch_size=4)
    with pytest.warns(UserWarning, match="num_workers=0"):  # and a hint that the GPU would wait for them
        assert _resumable_loader(data, config, torch.device("cuda")).pin_memory
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _resumable_loader(data, _config(total_steps=1, ema_decay=None, num_workers=2), torch.device("cuda"))
    assert not _resumable_loader(data, config, torch.device("cpu")).pin_memory
    pinned = DataLoader(DictDataset(), batch_size=4, pin_memory=True)
    assert _resumable_loader(pinned, config, torch.device("cpu")).pin_memory  # the user's choice stays


def test_a_loaders_workers_stay_unless_the_config_sets_them():
    """A DataLoader given with workers keeps them (they used to be dropped to the config's default 0)."""
    given = DataLoader(DictDataset(), batch_size=4, num_workers=2)
    assert _resumable_loader(given, _config(), torch.device("cpu")).num_workers == 2
    assert _resumable_loader(given, _config(num_workers=1), torch.device("cpu")).num_workers == 1
    assert _resumable_loader(DictDataset(), _config(num_workers=1), torch.device("cpu")).num_workers == 1
    with warnings.catch_warnings():  # the GPU hint counts the loader's own workers
        warnings.simplefilter("error")
        _resumable_loader(given, _config(), torch.device("cuda"))


def test_fresh_run_refuses_a_folder_with_checkpoints(tmp_path):
    config = _config(total_steps=3)
    Trainer(make_model(), multi_loss, uniform_sampler, DictDataset(), config, tmp_path).fit()
    with pytest.raises(ValueError, match="resume=True"):
        Trainer(make_model(), multi_loss, uniform_sampler, DictDataset(), config, tmp_path)


def test_gradient_checkpointing_hook(tmp_path):
    class Checkpointable(ToyTunable):
        enabled = False

        def gradient_checkpointing_enable(self):
            self.enabled = True

    config = _config(total_steps=1, gradient_checkpointing=True)
    model = Checkpointable()
    Trainer(model, multi_loss, uniform_sampler, DictDataset(), config, tmp_path / "a")
    assert model.enabled
    with pytest.raises(ValueError, match="gradient_checkpointing"):
        Trainer(ToyTunable(), multi_loss, uniform_sampler, DictDataset(), config, tmp_path / "b")


def test_bf16_autocast_on_cpu_runs(tmp_path):
    config = _config(total_steps=2, precision="bf16")
    Trainer(make_model(), multi_loss, uniform_sampler, DictDataset(), config, tmp_path).fit()
    assert torch.isfinite(torch.tensor(_read_log(tmp_path)[-1]["loss"]))


def test_bad_sampler_and_batch_are_reported(tmp_path):
    config = _config(total_steps=1)
    bad_sampler = Trainer(
        make_model(),
        multi_loss,
        lambda b, generator=None: torch.rand(2),
        DictDataset(),
        config,
        tmp_path / "a",
    )
    with pytest.raises(ValueError, match="sampler"):
        bad_sampler.fit()
    with pytest.raises(ValueError, match="fp16"):
        Trainer(
            make_model(),
            multi_loss,
            uniform_sampler,
            DictDataset(),
            _config(precision="fp16"),
            tmp_path / "b",
        )


def test_channels_last_trains_the_same_weights_and_saves_them(tmp_path):
    """NHWC batches and weights (GPU tensor cores' layout) change the memory order, not the arithmetic."""
    seen = []

    def watching_loss(output, batch, omega):
        seen.append(batch["input"].is_contiguous(memory_format=torch.channels_last))
        return multi_loss(output, batch, omega)

    runs = {}
    for channels_last in (False, True):
        torch.manual_seed(0)
        model = ToyTunable()  # plain 4-D conv weights (a converted network keeps its kernels in 5-D banks)
        config = _config(total_steps=4, channels_last=channels_last)
        out = tmp_path / str(channels_last)
        runs[channels_last] = Trainer(model, watching_loss, uniform_sampler, DictDataset(), config, out).fit()
    assert seen == [False] * 4 + [True] * 4
    assert runs[True].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    for name, value in runs[False].state_dict().items():
        torch.testing.assert_close(runs[True].state_dict()[name], value, rtol=1e-4, atol=1e-6, msg=name)
    saved = {k: load_weights(tmp_path / k / "weights.safetensors") for k in ("False", "True")}
    for name, value in saved["False"].items():
        torch.testing.assert_close(saved["True"][name], value, rtol=1e-4, atol=1e-6, msg=name)
