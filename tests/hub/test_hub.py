"""save_pretrained / from_pretrained / push_to_hub: round trips, offline Hub cache, upload, and errors."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from unittest import mock

import huggingface_hub
import pytest
import torch
from hub_testdata import TinyNet, fake_cache, tiny_custom, tiny_dncnn
from safetensors.torch import load_file, save_file

import tunify
from tunify.hub import HubError, from_pretrained, read_config, save_pretrained


def _same_outputs(a: tunify.TunableModel, b: tunify.TunableModel, x: torch.Tensor) -> None:
    for omega in torch.rand(3, a.p):
        with torch.no_grad():
            torch.testing.assert_close(a(x, omega=omega), b(x, omega=omega), rtol=0, atol=0)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_custom_round_trip_needs_model(tmp_path: Path) -> None:
    tmodel = tiny_custom()
    folder = tmodel.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["p"] == 2 and config["base"]["architecture"] == "custom"
    assert config["info"]["objectives"][0]["description"].startswith("ω1")
    with pytest.raises(HubError, match="custom network"):
        from_pretrained(folder)
    loaded = tunify.from_pretrained(folder, model=TinyNet())
    assert not loaded.training and loaded.info == tmodel.info
    _same_outputs(tmodel, loaded, torch.rand(2, 3, 12, 12))


def test_omega_effects_document_a_custom_network(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tmodel = tiny_custom()
    tmodel.info = {}  # nothing documented: the card would say "not documented" for every ω_i
    effects = ["stronger denoising", ("noise", "keeps the input's grain")]
    folder = save_pretrained(tmodel, tmp_path / "m", omega_effects=effects, repo_id="acme/mine")
    assert tmodel.info == {}  # the model in memory is left as it is
    assert read_config(folder)["info"]["objectives"] == [
        {"omega_index": 0, "description": "stronger denoising"},
        {"name": "noise", "omega_index": 1, "description": "keeps the input's grain"},
    ]
    card = (folder / "README.md").read_text()
    assert "| ω1 | – | stronger denoising |" in card and "| ω2 | noise | keeps the input's grain |" in card
    assert "not documented" not in card
    # a custom network cannot be rebuilt from config.json: the card shows only what loads it
    assert 'tunify.from_pretrained("acme/mine", model=TinyNet())' in card
    assert "tunify apply" not in card.split("tunify apply` / `tunify sweep` cannot")[1]
    assert "--model acme/mine" not in card and "tunify info acme/mine" in card
    from tunify.cli import main

    assert main(["info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "ω1:          stronger denoising" in out and "ω2:          noise: keeps the input's grain" in out
    for bad, match in (
        (["one"], r"one entry per ω_i \(p = 2\)"),
        ("ab", "one entry per ω_i"),
        (["x", ""], r"omega_effects\[1\] must be a non-empty string"),
        (["x", ("a", "b", "c")], r"omega_effects\[1\]"),
    ):
        with pytest.raises(ValueError, match=match):
            save_pretrained(tmodel, tmp_path / "bad", omega_effects=bad)
    assert not (tmp_path / "bad").exists()


def test_timm_round_trip(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    net = timm.create_model("test_resnet", pretrained=False, num_classes=3).eval()  # timm's tiny test model
    tmodel = tunify.convert(net, p=2).eval()
    save_pretrained(tmodel, tmp_path / "r")
    assert read_config(tmp_path / "r")["base"] == {
        "architecture": "timm:test_resnet",
        "kwargs": {"num_classes": 3},
    }
    loaded = from_pretrained(tmp_path / "r")
    assert set(loaded.state_dict()) == set(tmodel.state_dict())
    _same_outputs(tmodel, loaded, torch.rand(1, 3, 32, 32))

    # timm records no keywords: the usual ones are read back from the network; others need model=
    grey = timm.create_model("test_resnet", pretrained=False, num_classes=3, in_chans=1).eval()
    save_pretrained(tunify.convert(grey, p=2), tmp_path / "grey")
    assert read_config(tmp_path / "grey")["base"]["kwargs"] == {"num_classes": 3, "in_chans": 1}
    assert from_pretrained(tmp_path / "grey").p == 2
    narrow = timm.create_model("test_resnet", pretrained=False, num_classes=3, stem_width=8)
    save_pretrained(tunify.convert(narrow, p=2), tmp_path / "narrow")
    with pytest.raises(
        HubError, match=r"rebuilt as timm.create_model\('test_resnet', \*\*\{'num_classes': 3\}\)"
    ):
        from_pretrained(tmp_path / "narrow")
    model = timm.create_model("test_resnet", pretrained=False, num_classes=3, stem_width=8)
    assert from_pretrained(tmp_path / "narrow", model=model).p == 2


def test_zoo_round_trip_and_card(tmp_path: Path) -> None:
    tmodel = tiny_dncnn()
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.md").write_text("| ω | PSNR |\n|---|---|\n| (0, 1) | 30.00 |\n")
    (sweep / "tuning_strip.png").write_bytes(b"png")
    for i, name in ((2, "Kodak24"), (1, "CBSD68")):  # the recipes' further eval sets
        (sweep / "sweeps" / f"{i:02d}_{name}").mkdir(parents=True)
        (sweep / "sweeps" / f"{i:02d}_{name}" / "sweep.md").write_text(f"### {name}\n")
    save_pretrained(tmodel, tmp_path / "d", sweep_dir=sweep, repo_id="acme/dn")
    assert (tmp_path / "d" / "tuning_strip.png").is_file()
    card = huggingface_hub.ModelCard.load(tmp_path / "d" / "README.md")
    assert card.data.library_name == "tunify" and "tunable-convolutions" in card.data.tags
    assert "| (0, 1) | 30.00 |" in card.text and "](tuning_strip.png)" in card.text
    assert (
        card.text.index("| (0, 1) | 30.00 |") < card.text.index("### CBSD68") < card.text.index("### Kodak24")
    )
    assert 'tunify.from_pretrained("acme/dn")' in card.text
    assert "tunify.bake(model, torch.tensor([0.3,0.7]))" in card.text  # the card shows how to fix ω
    loaded = from_pretrained(tmp_path / "d")
    _same_outputs(tmodel, loaded, torch.rand(2, 3, 16, 16))
    assert "--export-space my-space --model acme/dn`" in card.text
    save_pretrained(tmodel, tmp_path / "d")  # overwriting an existing folder works and leaves no temp dir
    # saved without a repo id: the Space command (which loads from the Hub) names a Hub id to push to
    assert "--export-space my-space --model me/d`" in (tmp_path / "d" / "README.md").read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_offline_hub_cache(tmp_path: Path, offline: None) -> None:
    tmodel = tiny_dncnn(1)
    save_pretrained(tmodel, tmp_path / "m")
    fake_cache(tmp_path / "cache", "acme/tiny", tmp_path / "m")
    loaded = from_pretrained("acme/tiny", cache_dir=tmp_path / "cache")
    _same_outputs(tmodel, loaded, torch.rand(1, 3, 16, 16))
    with pytest.raises(
        HubError, match=r"acme/other/config\.json: not a local folder, not in the Hugging Face cache"
    ):
        from_pretrained("acme/other", cache_dir=tmp_path / "cache")


def test_pickle_only_repo_is_refused(tmp_path: Path, offline: None) -> None:
    tmodel = tiny_custom()
    save_pretrained(tmodel, tmp_path / "m")
    (tmp_path / "m" / "pytorch_model.bin").write_bytes(b"\x80 not loaded")
    (tmp_path / "m" / "model.safetensors").unlink()
    with mock.patch("torch.load") as torch_load:
        with pytest.raises(HubError, match=r"no model.safetensors; found \['pytorch_model.bin'\]"):
            from_pretrained(tmp_path / "m", model=TinyNet())
        fake_cache(tmp_path / "cache", "acme/bin", tmp_path / "m")
        with pytest.raises(HubError, match=r"model\.safetensors.*safetensors only"):
            from_pretrained("acme/bin", model=TinyNet(), cache_dir=tmp_path / "cache")
    torch_load.assert_not_called()


def test_hub_download_is_patched_at_tunify(tmp_path: Path) -> None:
    tmodel = tiny_dncnn()
    folder = save_pretrained(tmodel, tmp_path / "m")
    calls: list[str] = []

    def fake_download(repo_id: str, filename: str, **kwargs: object) -> str:
        calls.append(filename)
        assert kwargs["revision"] == "v1"
        return str(folder / filename)

    with (
        mock.patch("tunify.hub.io.hf_hub_download", fake_download),
        mock.patch("tunify.hub.io._hub_reachable", lambda endpoint: True),
    ):
        from_pretrained("acme/dn", revision="v1")
    assert calls == ["config.json", "model.safetensors"]


def test_unreachable_hub_uses_the_cache_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No back-off retries when the Hub does not answer: the cached copy, or the error, within seconds."""
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    tmodel = tiny_dncnn(1)
    save_pretrained(tmodel, tmp_path / "m")
    fake_cache(tmp_path / "cache", "acme/tiny", tmp_path / "m")
    start = time.perf_counter()
    loaded = from_pretrained("acme/tiny", cache_dir=tmp_path / "cache")
    with pytest.raises(HubError, match=r"acme/other/config\.json: .*http://127\.0\.0\.1:9 does not answer"):
        read_config("acme/other", cache_dir=tmp_path / "cache")
    assert time.perf_counter() - start < 3.0
    _same_outputs(tmodel, loaded, torch.rand(1, 3, 16, 16))


def test_push_to_hub_uploads_one_folder(tmp_path: Path) -> None:
    tmodel = tiny_dncnn()
    seen: dict[str, object] = {}

    def upload_folder(**kwargs: object) -> str:
        folder = Path(str(kwargs["folder_path"]))
        seen["files"] = sorted(p.name for p in folder.iterdir())
        seen["config"] = json.loads((folder / "config.json").read_text())
        seen.update(repo_id=kwargs["repo_id"], message=kwargs["commit_message"])
        return "https://huggingface.co/acme/dn/commit/abc"

    with mock.patch("tunify.hub.io.HfApi") as api_cls:
        api = api_cls.return_value
        api.create_repo.return_value = huggingface_hub.RepoUrl("https://huggingface.co/acme/dn")
        api.upload_folder.side_effect = upload_folder
        url = tmodel.push_to_hub("acme/dn", private=True, token="t")
    api_cls.assert_called_once_with(token="t")
    api.create_repo.assert_called_once_with("acme/dn", private=True, exist_ok=True, repo_type="model")
    assert api.upload_folder.call_count == 1
    assert seen["files"] == ["README.md", "config.json", "model.safetensors"]
    assert seen["repo_id"] == "acme/dn" and seen["config"]["p"] == 2
    assert url.endswith("/commit/abc")


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return save_pretrained(tiny_custom(), tmp_path / "m")


def _edit_weights(folder: Path, edit) -> None:
    from safetensors import safe_open

    with safe_open(folder / "model.safetensors", framework="pt") as f:
        metadata = f.metadata()
    state = load_file(folder / "model.safetensors")
    edit(state)
    save_file(state, folder / "model.safetensors", metadata=metadata)


def test_malformed_config(saved: Path) -> None:
    (saved / "config.json").write_text("{not json")
    with pytest.raises(HubError, match=r"config.json: not valid JSON"):
        from_pretrained(saved, model=TinyNet())
    (saved / "config.json").write_text(json.dumps({"p": 2}))
    with pytest.raises(HubError, match=r"missing key\(s\) \['tunify_version', 'base', 'conversion'\]"):
        from_pretrained(saved, model=TinyNet())


def test_unknown_architecture_and_newer_version(saved: Path) -> None:
    config = json.loads((saved / "config.json").read_text())
    config["base"] = {"architecture": "NoSuchNet", "kwargs": {}}
    config["tunify_version"] = "99.0.0"
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="newer"), pytest.raises(HubError, match="NoSuchNet"):
        from_pretrained(saved)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda s: s.pop(sorted(s)[0]), "missing"),
        (lambda s: s.__setitem__("extra", torch.zeros(1)), r"unexpected \['extra'\]"),
        (lambda s: s.__setitem__(sorted(s)[0], torch.zeros(1)), "shape mismatch"),
    ],
    ids=["missing", "extra", "shape"],
)
def test_mismatched_tensors(saved: Path, edit, match: str) -> None:
    _edit_weights(saved, edit)
    with pytest.raises(tunify.CheckpointError, match=match):
        from_pretrained(saved, model=TinyNet())


def test_not_a_folder_nor_repo(tmp_path: Path) -> None:
    with pytest.raises(HubError, match="not a valid Hub repo id"):
        from_pretrained(str(tmp_path / "missing" / "deeper" / "x"))


def test_bad_info_is_named(tmp_path: Path) -> None:
    tmodel = tiny_custom()
    tmodel.info = {"objectives": [{"omega_index": 0}]}
    with pytest.raises(ValueError, match=r"objectives'\]\[0\]"):
        save_pretrained(tmodel, tmp_path / "m")


def test_saved_folder_is_readable_by_others(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        folder = save_pretrained(tiny_dncnn(), tmp_path / "model")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [folder, *folder.iterdir()]}
    assert modes == {"model": 0o755, "config.json": 0o644, "model.safetensors": 0o644, "README.md": 0o644}
