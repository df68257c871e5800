"""Hugging Face packaging: save/load folders, push/pull through a loopback Hub, bad folders."""

import json

import pytest
import torch
from conftest import TEST_VARIANTS
from safetensors.torch import load_file, save_file

import lightsr
from lightsr.registry import MODELS


def _same_outputs(a, b, shape=(1, 3, 19, 23)):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        return torch.equal(a.eval()(x), b.eval()(x))


@pytest.mark.parametrize("name", list(MODELS))
def test_save_load_round_trip_every_variant(name, tmp_path):
    model = lightsr.create_model(name)
    # perturb every tensor so a load that silently kept fresh random weights would differ
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    model.save_pretrained(tmp_path / name)
    assert sorted(p.name for p in (tmp_path / name).iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((tmp_path / name / "config.json").read_text())
    assert config["architecture"] == model.architecture
    assert config["task"] in ("super-resolution", "flare-removal")
    assert config["scale"] == model.scale
    loaded = lightsr.load(tmp_path / name)
    assert type(loaded) is type(model) and not loaded.training
    assert loaded.config == model.config
    if name in TEST_VARIANTS or name in ("rdn-tiny",):
        assert _same_outputs(model, loaded)
    else:  # large variants: compare every tensor instead of running them
        for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
            assert k == k2 and torch.equal(v, v2)


def test_model_card_metadata(saved_model):
    folder, _ = saved_model
    card = (folder / "README.md").read_text()
    assert "library_name: lightsr" in card
    assert "pipeline_tag: image-to-image" in card
    assert "license: apache-2.0" in card
    assert "super-resolution" in card
    assert "lightsr.load(" in card


def test_card_keeps_the_architecture_tags_paper_base_model_and_repo_id(tmp_path):
    from huggingface_hub import ModelCard

    from lightsr.cards import write_card

    model = lightsr.create_model("rdn-test")
    write_card(tmp_path, model, repo_id="lightsr/rdn-light-x4", base_model="lightsr/rdn-light-x2",
               eval_results=_some_eval())
    card = ModelCard.load(tmp_path / "README.md")
    assert {"rdn", "super-resolution", "arxiv:1802.08797"} <= set(card.data.tags)
    assert card.data.base_model == "lightsr/rdn-light-x2"
    assert card.data.model_name == "lightsr/rdn-light-x4"  # the model-index entry is named by the repo id
    assert "https://arxiv.org/abs/1802.08797" in card.text and "pip install" in card.text
    write_card(tmp_path, model, repo_id="lightsr/rdn-light-x2", base_model="lightsr/rdn-light-x2")
    assert ModelCard.load(tmp_path / "README.md").data.base_model is None  # a fine-tune of itself names none
    span = lightsr.create_model("span-test")
    write_card(tmp_path, span)
    assert "at inference (re-parameterised)" in (tmp_path / "README.md").read_text()


def test_flare_card_reports_harm_on_photos_without_flare(tmp_path):
    """The flare card says how far the model moves photos that have no flare, and warns when it is far."""
    import numpy as np

    import lightsr
    from lightsr.cards import flare_card_context, write_card
    from lightsr.evaluate import evaluate_flare

    model = lightsr.create_model("nf-resunet-flare-test")
    inp, target = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    scores = {"optics": evaluate_flare([(inp, target, {"flare": np.zeros((16, 16), np.uint8)})], [target])}
    harmful = flare_card_context(model, scores, scores, flare_free={"mean": 35.06, "worst": 15.48})
    write_card(tmp_path, model, **harmful)
    text = (tmp_path / "README.md").read_text()
    assert "mean 35.06 dB" in text and "15.48 dB on the worst" in text and "not always returned" in text
    assert "essentially unchanged" in flare_card_context(model, scores, scores,
                                                         flare_free={"mean": 99.0, "worst": 62.0})["notes"]
    assert "notes" not in flare_card_context(model, scores, scores)


def _some_eval():
    from huggingface_hub import EvalResult

    return [EvalResult(task_type="image-to-image", dataset_type="set5", dataset_name="Set5", metric_type="psnr",
                       metric_value=30.0)]


def test_push_load_by_repo_id_pinned_and_offline(hub, monkeypatch):
    model = lightsr.create_model("rdn-test")
    first = model.push_to_hub("lightsr/rdn-test-x2")
    first_oid = first.oid
    loaded = lightsr.load("lightsr/rdn-test-x2")
    assert _same_outputs(model, loaded)
    assert any(path.endswith("/resolve/main/model.safetensors") for _, path in hub.requests)

    # a second push changes main; the first commit stays loadable when pinned
    changed = lightsr.create_model("rdn-test")
    changed.push_to_hub("lightsr/rdn-test-x2")
    assert _same_outputs(changed, lightsr.load("lightsr/rdn-test-x2"))
    assert _same_outputs(model, lightsr.load("lightsr/rdn-test-x2", revision=first_oid))

    # offline: served from the cache without a single request
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    before = len(hub.requests)
    assert _same_outputs(model, lightsr.load("lightsr/rdn-test-x2", revision=first_oid))
    assert _same_outputs(changed, lightsr.load("lightsr/rdn-test-x2"))
    assert len(hub.requests) == before


def test_push_writes_the_card_and_config(hub):
    lightsr.create_model("nf-resunet-test").push_to_hub("someone/flare")
    repo = hub.repos["someone/flare"]
    files = repo.commits[repo.branches["main"]]
    assert {"config.json", "model.safetensors", "README.md"} <= set(files)
    assert json.loads(files["config.json"])["task"] == "flare-removal"
    assert b"library_name: lightsr" in files["README.md"]


def test_offline_and_not_cached_is_a_clear_error(hub, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(lightsr.LightSRError, match="not in the local cache"):
        lightsr.load("lightsr/never-downloaded")


def test_missing_repo_and_revision(hub):
    with pytest.raises(lightsr.LightSRError, match="repo not found"):
        lightsr.load("lightsr/does-not-exist")
    lightsr.create_model("rdn-test").push_to_hub("lightsr/exists")
    with pytest.raises(lightsr.LightSRError, match="no revision 'v9'"):
        lightsr.load("lightsr/exists", revision="v9")


def test_hub_repo_with_pickle_only_is_refused(hub):
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo("lightsr/pickled")
    model = lightsr.create_model("rdn-test")
    api.upload_file(path_or_fileobj=json.dumps(model.hub_config()).encode(), path_in_repo="config.json",
                    repo_id="lightsr/pickled")
    api.upload_file(path_or_fileobj=b"\x80\x04not really", path_in_repo="pytorch_model.bin", repo_id="lightsr/pickled")
    with pytest.raises(lightsr.LightSRError, match="safetensors only"):
        lightsr.load("lightsr/pickled")


# -- bad local folders ----------------------------------------------------------------------
def test_folder_without_config(tmp_path):
    with pytest.raises(lightsr.LightSRError, match="no config.json"):
        lightsr.load(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(lightsr.LightSRError, match="does not exist"):
        lightsr.load(tmp_path / "nope")


def test_unknown_architecture(saved_model):
    folder, _ = saved_model
    config = json.loads((folder / "config.json").read_text())
    config["architecture"] = "srgan-9000"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(lightsr.LightSRError, match="unknown architecture 'srgan-9000'.*rdn"):
        lightsr.load(folder)


def test_config_that_is_not_json(saved_model):
    folder, _ = saved_model
    (folder / "config.json").write_text("{architecture: rdn")
    with pytest.raises(lightsr.LightSRError, match="not valid JSON"):
        lightsr.load(folder)


@pytest.mark.parametrize("problem", ["missing", "extra", "misshaped"])
def test_weights_that_do_not_match(saved_model, problem):
    folder, _ = saved_model
    state = load_file(str(folder / "model.safetensors"))
    if problem == "missing":
        del state["output.weight"]
    elif problem == "extra":
        state["surprise.weight"] = torch.zeros(3)
    else:
        state["output.bias"] = torch.zeros(5)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(lightsr.LightSRError, match={"missing": "missing tensors: output.weight",
                                                    "extra": "unexpected tensors: surprise.weight",
                                                    "misshaped": r"mis-shaped tensors: output.bias \(5,\)"}[problem]):
        lightsr.load(folder)


def test_pickle_checkpoint_is_never_opened(saved_model, monkeypatch):
    folder, model = saved_model
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")

    def no_unpickling(*args, **kwargs):
        raise AssertionError("torch.load must never be called")

    monkeypatch.setattr(torch, "load", no_unpickling)
    with pytest.raises(lightsr.LightSRError, match=r"only pickle weights \(pytorch_model.bin\).*never unpickles"):
        lightsr.load(folder)
    with pytest.raises(lightsr.LightSRError, match="is a file"):
        lightsr.load(folder / "pytorch_model.bin")


def test_corrupt_safetensors(saved_model):
    folder, _ = saved_model
    (folder / "model.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(lightsr.LightSRError, match="cannot read weights"):
        lightsr.load(folder)


def test_from_pretrained_of_the_wrong_class(saved_model):
    from lightsr.models.pix2pix import Pix2Pix

    folder, _ = saved_model
    with pytest.raises(lightsr.LightSRError, match="holds a 'rdn' model"):
        Pix2Pix.from_pretrained(folder)


def test_from_pretrained_on_the_base_class_dispatches_on_the_config(saved_model, tmp_path):
    from lightsr.hub import LightSRModel
    from lightsr.models.rdn import RDN

    folder, model = saved_model
    loaded = LightSRModel.from_pretrained(folder)
    assert type(loaded) is RDN and not loaded.training
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "config.json").write_text('{"architecture": "edsr", "task": "super-resolution", "scale": 2}')
    (odd / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    with pytest.raises(lightsr.LightSRError, match="unknown architecture 'edsr'"):
        LightSRModel.from_pretrained(odd)


def test_strict_false_is_refused(saved_model):
    from lightsr.models.rdn import RDN

    folder, _ = saved_model
    with pytest.raises(lightsr.LightSRError, match="strictly"):
        RDN.from_pretrained(folder, strict=False)


def test_cli_push_then_load(hub, saved_model, capsys, tmp_path):
    from lightsr import cli

    folder, model = saved_model
    assert cli.main(["push", str(folder), "me/from-cli"]) == 0
    assert "pushed" in capsys.readouterr().out
    assert _same_outputs(model, lightsr.load("me/from-cli"))
    assert cli.main(["push", str(tmp_path), "me/empty"]) == 2  # not a model folder: refused before upload
    assert "no config.json" in capsys.readouterr().err and "me/empty" not in hub.repos


@pytest.mark.parametrize("how", ["load", "from_pretrained"])
def test_one_load_fetches_config_json_once(hub, how):
    """The Hub counts each config.json request as a download: a load makes one, not four."""
    from lightsr.hub import LightSRModel

    lightsr.create_model("rdn-test").push_to_hub("lightsr/rdn-test-x2")
    hub.requests.clear()
    model = lightsr.load("lightsr/rdn-test-x2") if how == "load" else LightSRModel.from_pretrained(
        "lightsr/rdn-test-x2")
    assert model.architecture == "rdn"
    config_gets = [r for r in hub.requests if r[1].endswith("/config.json")]
    weight_gets = [r for r in hub.requests if r[1].endswith("/model.safetensors")]
    # one hf_hub_download each: a HEAD for the etag, then the GET
    assert [m for m, _ in config_gets] == ["HEAD", "GET"] and [m for m, _ in weight_gets] == ["HEAD", "GET"]


def test_shipped_names_resolve_to_checkpoints_then_to_the_hub(hub, monkeypatch, tmp_path, capsys):
    """checkpoints/NAME when present; else lightsr/NAME on the Hub (a pip install has no
    checkpoints/); offline with nothing cached, one line naming both places."""
    from huggingface_hub import constants

    from lightsr import cli, zoo

    local = tmp_path / "ckpts"
    lightsr.create_model("ecbsr-test").save_pretrained(local / "rdn-light-x2")  # a stand-in for the shipped one
    monkeypatch.setattr(zoo, "CHECKPOINTS", local)
    assert zoo.resolve("rdn-light-x2").architecture == "ecbsr"
    assert not hub.requests  # a local checkpoint never touches the network
    lightsr.create_model("rdn-test").push_to_hub("lightsr/rdn-light-x4")
    assert zoo.resolve("rdn-light-x4").architecture == "rdn"  # not shipped here: the Hub repo
    monkeypatch.setattr(zoo, "CHECKPOINTS", tmp_path / "no-checkpoints")  # as after pip install
    assert [e.name for e in zoo.available("super-resolution")][:2] == ["rdn-light-x2", "rdn-light-x4"]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert cli.main(["upscale", "a.png", str(tmp_path / "b.png"), "--model", "ecbsr-x2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-checkpoints" in err and "'lightsr/ecbsr-x2'" in err and "cache" in err


def test_get_model_and_resolve_follow_one_rule(hub, monkeypatch, tmp_path):
    """The app's cached loader is resolve: a local checkpoint by default, the Hub namespace
    when one is asked for (LIGHTSR_HUB_NAMESPACE), for the CLI and the app alike."""
    from lightsr import zoo

    local = tmp_path / "ckpts"
    lightsr.create_model("ecbsr-test").save_pretrained(local / "ecbsr-x2")
    lightsr.create_model("rdn-test").push_to_hub("mirror/ecbsr-x2")
    monkeypatch.setattr(zoo, "CHECKPOINTS", local)
    monkeypatch.setattr(zoo, "_cache", {})
    entry = next(e for e in zoo.CATALOGUE if e.name == "ecbsr-x2")
    assert zoo.resolve("ecbsr-x2").architecture == zoo.get_model(entry).architecture == "ecbsr"
    monkeypatch.setenv("LIGHTSR_HUB_NAMESPACE", "mirror")
    assert zoo.resolve("ecbsr-x2").architecture == zoo.get_model(entry).architecture == "rdn"
    assert zoo.get_model(entry) is zoo.get_model(entry)  # cached per name and namespace


def test_prepare_settles_every_available_model_and_skips_a_broken_one(monkeypatch, tmp_path, caplog):
    """zoo.prepare (the app runs it on a thread at start-up): each available model loaded once and
    through backends.runner; a folder that fails to load is one warning line, not the end."""
    from lightsr import backends, zoo

    local = tmp_path / "ckpts"
    lightsr.create_model("ecbsr-test").save_pretrained(local / "ecbsr-x2")
    lightsr.create_model("rdn-test").save_pretrained(local / "rdn-light-x2")
    (local / "ecbsr-x4").mkdir()
    (local / "ecbsr-x4" / "config.json").write_text("{not json")  # listed as available, fails to load
    monkeypatch.setattr(zoo, "CHECKPOINTS", local)
    monkeypatch.setattr(zoo, "_cache", {})
    seen = []
    monkeypatch.setattr(backends, "runner", lambda model, backend: seen.append((model, backend)) or model)
    with caplog.at_level("WARNING", logger="lightsr.zoo"):
        assert zoo.prepare() == ["rdn-light-x2", "ecbsr-x2"]
    assert [m for m, _ in seen] == [zoo.get_model(e) for e in zoo.CATALOGUE if e.name in ("rdn-light-x2", "ecbsr-x2")]
    assert all(b is None for _, b in seen)  # what the app's requests use: $LIGHTSR_BACKEND, else auto
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("could not prepare ecbsr-x4") and "\n" not in line
