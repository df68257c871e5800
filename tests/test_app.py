"""The Gradio app end to end: gradio_client against a launched app, and bad uploads."""

import socket
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT
from media import make_clip, stream_facts
from PIL import Image

import lightsr
from lightsr import zoo

sys.path.insert(0, str(ROOT))
gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Tiny models saved under the shipped names, so the app has one of each kind."""
    folder = tmp_path_factory.mktemp("checkpoints")
    lightsr.create_model("rdn-test").save_pretrained(folder / "rdn-light-x2")
    lightsr.create_model("ecbsr-test").save_pretrained(folder / "ecbsr-x2")
    flare = lightsr.create_model("nf-resunet-test")
    torch.nn.init.normal_(flare.head.weight, std=0.05)  # the untrained model is the identity; make it act
    flare.save_pretrained(folder / "nf-resunet-flare")
    lightsr.create_model("pix2pix-flare-test").save_pretrained(folder / "pix2pix-flare")  # with it, the ensemble
    return folder


@pytest.fixture(scope="module")
def app_url(checkpoints):
    import app

    mp = pytest.MonkeyPatch()
    mp.setattr(zoo, "CHECKPOINTS", checkpoints)
    mp.setattr(zoo, "_cache", {})
    demo = app.build()
    demo.launch(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True,
                max_file_size="20mb")
    yield demo.local_url
    demo.close()
    mp.undo()


@pytest.fixture(scope="module")
def client(app_url, tmp_path_factory):
    return Client(app_url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


@pytest.fixture
def photo_file(tmp_path, photo):
    path = tmp_path / "photo.png"
    Image.fromarray(photo).save(path)
    return path


def test_compare_defaults_to_original_and_reports_the_library_metrics(client, photo_file, checkpoints):
    slider, crops, table = client.predict(handle_file(str(photo_file)), api_name="/compare")
    bicubic, model_out = Image.open(slider[0]), Image.open(slider[1])
    assert bicubic.size == model_out.size == (96, 72)
    assert len(crops) == 3
    rows = {r[0]: r for r in table["data"]}
    # the same computation through the library gives the same numbers
    model = lightsr.load(checkpoints / "rdn-light-x2")
    hr = np.asarray(Image.open(photo_file).convert("RGB"))
    sr = lightsr.enhance(model, lightsr.bicubic_downscale(Image.open(photo_file).convert("RGB"), 2))
    assert rows["model"][1] == pytest.approx(round(lightsr.psnr(np.asarray(sr), hr, crop_border=2), 2))
    assert rows["model"][2] == pytest.approx(round(lightsr.ssim(np.asarray(sr), hr, crop_border=2), 4))
    # the slider shows the model's actual pixels (PNG, not lossy WebP)
    assert np.array_equal(np.asarray(model_out.convert("RGB")), np.asarray(sr))


def test_compare_low_res_mode_has_no_metrics(client, photo_file):
    slider, crops, table = client.predict(handle_file(str(photo_file)), "It is a low-resolution image",
                                          api_name="/compare")
    assert Image.open(slider[1]).size == (192, 144)
    assert len(crops) == 2 and not table["data"]


def test_deflare_returns_slider_and_png(client, photo_file):
    slider, png = client.predict(handle_file(str(photo_file)), api_name="/deflare")
    out = Image.open(png)
    assert out.format == "PNG" and out.size == (96, 72)
    assert Image.open(slider[0]).size == (96, 72)


def test_a_16_bit_upload_is_deflared_at_its_own_brightness(client, photo, tmp_path):
    """A 16-bit grey PNG (as raw converters write) is shown and processed as the photo it is, not clipped
    white by Pillow's convert("RGB")."""
    grey = np.asarray(Image.fromarray(photo).convert("L")).copy()
    grey[30:34, 40:44] = 255  # a light source, so that the models run
    path = tmp_path / "grey16.png"
    Image.fromarray(grey.astype(np.uint16) * 257).save(path)
    slider, png = client.predict(handle_file(str(path)), api_name="/deflare")
    before = np.asarray(Image.open(slider[0]).convert("L")).astype(int)
    assert np.abs(before - grey).max() <= 1
    assert abs(np.asarray(Image.open(png).convert("L")).mean() - grey.mean()) < 10


@pytest.mark.parametrize("light", [True, False], ids=["lamp", "no-light-source"])
def test_a_transparent_upload_keeps_its_alpha_in_the_download(client, photo, tmp_path, light):
    """With a lamp (the models run) and without one (returned unchanged, the models skipped), the download
    keeps the upload's alpha and its colour as remove_flare gives it."""
    lamp = photo.copy()
    if light:
        lamp[30:34, 40:44] = 255
    assert lightsr.flare.has_light_source(lamp) == light
    img = Image.fromarray(lamp).convert("RGBA")
    alpha = np.tile(np.linspace(0, 255, img.width).astype(np.uint8), (img.height, 1))
    img.putalpha(Image.fromarray(alpha))
    path = tmp_path / "alpha.png"
    img.save(path)
    slider, png = client.predict(handle_file(str(path)), api_name="/deflare")
    out = Image.open(png)
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out.getchannel("A")), alpha)
    if not light:
        assert np.array_equal(np.asarray(out.convert("RGB")), lamp)


def test_deflare_methods_are_the_library_paths(client, photo, tmp_path, checkpoints, monkeypatch):
    import app
    from lightsr.flare import remove_flare

    lamp = photo.copy()
    lamp[30:34, 40:44] = 255  # a light source: without one, both methods return the photo as it is
    photo_file = tmp_path / "lamp.png"
    Image.fromarray(lamp).save(photo_file)

    monkeypatch.setattr(app, "FLARE_WORK_SIZE", 48)  # the 96x72 photo is then "large"
    label = "NF-ResUNet"
    _, fast = client.predict(handle_file(str(photo_file)), label, app.WHOLE_FRAME,
                             api_name="/deflare")
    _, full = client.predict(handle_file(str(photo_file)), label, app.TILES,
                             api_name="/deflare")
    model = lightsr.load(checkpoints / "nf-resunet-flare")
    img = Image.open(photo_file)
    want_fast = np.asarray(remove_flare(model, img, method="lowres", work_size=48))
    want_full = np.asarray(remove_flare(model, img, method="tiled"))
    assert not np.array_equal(want_fast, want_full)
    assert np.array_equal(np.asarray(Image.open(fast).convert("RGB")), want_fast)
    assert np.array_equal(np.asarray(Image.open(full).convert("RGB")), want_full)
    _, half = client.predict(handle_file(str(photo_file)), label, app.WHOLE_FRAME, 0.5, api_name="/deflare")
    want_half = np.asarray(remove_flare(model, img, method="lowres", work_size=48, strength=0.5))
    assert not np.array_equal(want_half, want_fast)
    assert np.array_equal(np.asarray(Image.open(half).convert("RGB")), want_half)


def test_the_flare_ensemble_is_the_library_call(client, photo, tmp_path, checkpoints):
    """The ensemble's label runs remove_flare(first, ensemble=rest) on the whole frame; with tiles it is
    refused in one line."""
    import app
    from gradio_client.exceptions import AppError
    from lightsr.flare import remove_flare

    label = zoo.ENSEMBLES[0].label
    assert zoo.choices("flare-removal") == [label, "Pix2Pix", "NF-ResUNet"]  # the ensemble is the default
    lamp = photo.copy()
    lamp[30:34, 40:44] = 255
    photo_file = tmp_path / "lamp.png"
    Image.fromarray(lamp).save(photo_file)
    _, out = client.predict(handle_file(str(photo_file)), label, app.WHOLE_FRAME, api_name="/deflare")
    p2p, nf = (lightsr.load(checkpoints / name) for name in zoo.ENSEMBLES[0].names)
    want = np.asarray(remove_flare(p2p, Image.open(photo_file), work_size=app.FLARE_WORK_SIZE, ensemble=[nf]))
    assert not np.array_equal(want, np.asarray(remove_flare(p2p, Image.open(photo_file))))
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), want)
    with pytest.raises(AppError, match="whole frame only"):
        client.predict(handle_file(str(photo_file)), label, app.TILES, api_name="/deflare")


def test_upscale_video_keeps_sound(client, tmp_path):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=8)
    result = client.predict(handle_file(str(clip)), api_name="/upscale_video")
    path = result["video"] if isinstance(result, dict) else result
    facts = stream_facts(path)
    assert (facts["width"], facts["height"]) == (128, 96) and len(facts["times"]) == 8
    assert facts["audio"]["codec"] == "aac"


def test_bad_uploads_get_clear_errors(client, tmp_path):
    from gradio_client.exceptions import AppError

    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    with pytest.raises(AppError, match="not an image"):
        client.predict(handle_file(str(text)), api_name="/compare")
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video at all")
    with pytest.raises(AppError, match="not a video"):
        client.predict(handle_file(str(fake)), api_name="/upscale_video")
    long_clip = tmp_path / "long.mp4"
    make_clip(long_clip, w=16, h=16, fps=1, frames=65, audio=None)
    with pytest.raises(AppError, match="over the limit of 60 s"):
        client.predict(handle_file(str(long_clip)), api_name="/upscale_video")


def test_eight_concurrent_compares_all_complete(client, photo, tmp_path):
    import resource

    # eight different uploads, as from eight visitors (identical outputs would share one
    # cache file in Gradio, which races when served concurrently: not what is tested here)
    files = []
    for i in range(8):
        path = tmp_path / f"visitor{i}.png"
        Image.fromarray(np.roll(photo, 5 * i, axis=1)).save(path)
        files.append(path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    jobs = [client.submit(handle_file(str(f)), api_name="/compare") for f in files]
    results = [job.result(timeout=120) for job in jobs]
    assert len(results) == 8 and all(len(r[2]["data"]) == 2 for r in results)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 300  # queued one at a time: no pile-up of eight jobs' buffers


def test_all_tabs_share_one_concurrency_group(client, photo, photo_file, tmp_path, monkeypatch):
    """Jobs sent to different tabs at once still run one at a time (two cores, one job)."""
    import threading
    import time

    import app

    lamp = photo.copy()
    lamp[30:36, 40:46] = 255  # a light source, so that the flare tab runs its model
    lamp_file = tmp_path / "lamp.png"
    Image.fromarray(lamp).save(lamp_file)
    spans, lock = [], threading.Lock()

    def slow(fn):
        def run(*args, **kwargs):
            start = time.monotonic()
            time.sleep(0.4)
            out = fn(*args, **kwargs)
            with lock:
                spans.append((start, time.monotonic()))
            return out
        return run

    monkeypatch.setattr(app, "remove_flare", slow(app.remove_flare))
    monkeypatch.setattr(app, "compare_with_bicubic", slow(app.compare_with_bicubic))
    jobs = [client.submit(handle_file(str(path)), api_name=name)
            for path, name in ((lamp_file, "/deflare"), (photo_file, "/compare")) * 2]
    for job in jobs:
        job.result(timeout=120)
    spans.sort()
    assert len(spans) == 4
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:])), spans


def test_results_are_swept_and_gradio_cleans_its_cache(tmp_path, monkeypatch):
    import os
    import time

    import app

    monkeypatch.setattr(app, "WORK", tmp_path / "work")
    first = app._png(Image.new("RGB", (4, 4)))
    old = time.time() - app.OUTPUT_TTL_S - 5
    os.utime(first, (old, old))
    os.utime(os.path.dirname(first), (old, old))
    second = app._png(Image.new("RGB", (4, 4)))
    assert not os.path.exists(first) and os.path.exists(second)  # what Gradio has copied long ago goes
    assert app.build().delete_cache == app.CACHE_SWEEP


def test_a_malformed_api_payload_is_a_clear_error(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Upload an image first"):
        client.predict({"not": "a file"}, api_name="/compare")


def test_every_tab_has_lazily_cached_examples_in_the_compute_group():
    import app

    demo = app.build()
    by_name = {}
    for fn in demo.fns.values():
        by_name.setdefault(getattr(fn.fn, "__name__", ""), []).append(fn)
    assert {f.concurrency_id for name in ("deflare", "upscale", "compare", "load_example_output")
            for f in by_name[name]} == {app.COMPUTE}
    # flare (made scenes, and real night photos), video (a clip made by the project), compare
    assert len(by_name["load_example_output"]) == 4
    assert (app.EXAMPLES / "video" / "street-pan.mp4").is_file()
