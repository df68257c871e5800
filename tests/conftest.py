"""Shared fixtures. The Hugging Face cache goes to a temporary folder for the whole run."""

import os
import sys
import tempfile
from pathlib import Path

# Before huggingface_hub is imported anywhere: no telemetry, no touching the user's cache.
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="lightsr-hf-home-")
os.environ["LIGHTSR_CACHE"] = tempfile.mkdtemp(prefix="lightsr-cache-")  # PSF banks made by the tests
os.environ.pop("HF_HUB_OFFLINE", None)
# PyTorch is the reference: the suite runs on it (subprocesses inherit this), and
# tests/test_backends.py checks OpenVINO against it explicitly.
os.environ["LIGHTSR_BACKEND"] = "torch"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
sys.path.insert(0, str(Path(__file__).parent))

from hub_server import HubServer  # noqa: E402

import lightsr  # noqa: E402
from lightsr.registry import MODELS  # noqa: E402

TEST_VARIANTS = [name for name in MODELS if name.endswith("-test")]


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A loopback Hub: huggingface_hub (and so lightsr) talks to it for the test's duration."""
    from huggingface_hub import constants

    with HubServer() as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            server.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
        monkeypatch.setenv("HF_TOKEN", "hf_loopback_test_token")
        yield server


@pytest.fixture
def photo() -> np.ndarray:
    """A 72x96 crop of a real training photo (uint8 RGB): natural texture, fast to process."""
    path = sorted((DATA / "sr-train").glob("*.jpg"))[0]
    img = Image.open(path).convert("RGB")
    return np.asarray(img)[100:172, 200:296].copy()


@pytest.fixture
def saved_model(tmp_path):
    """A saved rdn-test model folder and the model it came from."""
    model = lightsr.create_model("rdn-test").eval()
    folder = tmp_path / "rdn-test-x2"
    model.save_pretrained(folder)
    return folder, model


@pytest.fixture
def no_flare_model():
    """A flare model that predicts no flare: its output is its input (the remove_flare steps after it show)."""
    import torch

    model = lightsr.create_model("nf-resunet-flare-test").eval()
    with torch.no_grad():
        model.head.bias.zero_()
        model.head.weight.zero_()
    return model
