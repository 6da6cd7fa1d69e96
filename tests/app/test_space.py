"""``tunify app --export-space``: a Hugging Face Space for a published model."""

from __future__ import annotations

import shutil
from pathlib import Path

import huggingface_hub
import pytest
import yaml

from tunify.cli import main

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def published(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``acme/tiny`` in an offline Hugging Face cache, as a download leaves it."""
    repo = tmp_path / "cache" / "models--acme--tiny"
    (repo / "snapshots" / SHA).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SHA)
    shutil.copyfile(model_dir / "config.json", repo / "snapshots" / SHA / "config.json")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    return "acme/tiny"


def test_export_space_writes_a_ready_space(published: str, tmp_path: Path) -> None:
    out = tmp_path / "space"
    assert main(["app", "--export-space", str(out), "--model", published]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "app.py", "requirements.txt"]
    header = (out / "README.md").read_text().split("---")[1]
    meta = yaml.safe_load(header)
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and meta["models"] == [published]
    assert meta["sdk_version"].count(".") == 2 and len(meta["short_description"]) <= 60
    app = (out / "app.py").read_text()
    compile(app, "app.py", "exec")
    assert "create('acme/tiny')" in app
    assert (out / "requirements.txt").read_text().startswith("tunify[app]")


def test_export_space_needs_a_hub_repo(
    published: str, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["app", "--export-space", str(tmp_path / "s")]) == 2
    assert "needs --model REPO" in capsys.readouterr().err
    assert main(["app", "--export-space", str(tmp_path / "s"), "--model", str(model_dir)]) == 2
    assert "Hub repo id" in capsys.readouterr().err
    assert main(["app", "--export-space", str(tmp_path / "s"), "--model", "acme/missing"]) == 2
    assert "acme/missing" in capsys.readouterr().err


def test_app_command_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["app", "--preview-side", "4"]) == 2
    assert "--preview-side must be at least 16" in capsys.readouterr().err
    assert main(["app", "--model", "/no/such/model", "--port", "1"]) == 2
    assert "cannot load the model /no/such/model" in capsys.readouterr().err
