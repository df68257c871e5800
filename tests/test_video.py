"""lightsr.video: round trips keep frames, timing and sound; bad input fails cleanly."""

import av
import numpy as np
import pytest
import torch
from media import make_audio_only, make_clip, stream_facts
from PIL import Image

import lightsr
from lightsr import cli
from lightsr.video import probe_video, sample_frames, upscale_video


@pytest.fixture(scope="module")
def model():
    return lightsr.create_model("rdn-test").eval()


def test_round_trip_with_aac_audio(tmp_path, model):
    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(src, frames=12)
    calls = []
    timings = upscale_video(src, dst, model, progress=lambda d, t: calls.append((d, t)))
    a, b = stream_facts(src), stream_facts(dst)
    assert (b["width"], b["height"]) == (128, 96)
    assert b["codec"] == "h264" and b["pix_fmt"] == "yuv420p"
    assert len(b["times"]) == len(a["times"]) == 12
    assert np.allclose(a["times"], b["times"], atol=1e-3)
    assert b["audio"]["codec"] == "aac"
    assert b["audio"]["seconds"] == pytest.approx(a["audio"]["seconds"], abs=0.05)
    assert calls[-1] == (12, 12) and timings.frames == 12
    assert not list(tmp_path.glob(".*"))
    # +faststart: the moov atom comes before the media data
    head = dst.read_bytes()[:4096]
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))


def test_colours_survive_the_planar_pipeline(tmp_path, monkeypatch):
    """Decode, model and encode hand planar RGB along (FFmpeg's gbrp stores G, B, R): with a model
    that only repeats pixels, each region of the output keeps its colour (a swapped plane would
    turn red to blue or green; a BT.601 matrix read as BT.709 would shift red and green)."""
    colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 50, 210), "yellow": (230, 220, 40)}
    img = np.zeros((48, 64, 3), np.uint8)
    for (y, x), c in zip([(0, 0), (0, 32), (24, 0), (24, 32)], colours.values()):
        img[y:y + 24, x:x + 32] = c
    src, dst = tmp_path / "colours.mp4", tmp_path / "out.mp4"
    with av.open(str(src), "w") as out:
        vs = out.add_stream("libx264", rate=10, options={"crf": "0"})
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv444p"
        for i in range(4):
            for packet in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in vs.encode(None):
            out.mux(packet)
    model = lightsr.create_model("rdn-test").eval()
    monkeypatch.setattr(model, "forward", lambda x: torch.nn.functional.interpolate(x, scale_factor=2))
    upscale_video(src, dst, model, crf=0, backend="torch")
    with av.open(str(dst)) as c:
        cc = c.streams.video[0].codec_context
        # tagged BT.709, limited range, so no player has to guess the matrix
        assert (cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range) == (1, 1, 1, 1)
        # read as BT.709 whatever the tags say: a player that assumes BT.709 for HD sees these colours
        frame = next(c.decode(video=0)).reformat(format="rgb24", src_colorspace="itu709").to_ndarray().astype(int)
    for (y, x), c in zip([(0, 0), (0, 64), (48, 0), (48, 64)], colours.values()):
        region = frame[y + 8:y + 40, x + 8:x + 56].reshape(-1, 3).mean(axis=0)
        assert np.abs(region - c).max() < 6, (c, region)


def test_an_untagged_hd_input_is_read_as_players_show_it(tmp_path):
    """An untagged stream is read with the matrix players guess for its size (BT.709 at HD, BT.601
    below), so the frames keep the colours the user saw: an HD clip written with BT.709 and no tag
    comes back with its colours (read as BT.601, FFmpeg's default, red 220 would come back 203)."""
    from lightsr.video import _frame_array, _frame_planes

    from av.video.reformatter import Colorspace

    colour = (220, 30, 30)
    for (w, h), matrix in (((1280, 720), Colorspace.ITU709), ((640, 360), Colorspace.ITU601)):
        src = tmp_path / f"untagged{h}.mp4"
        with av.open(str(src), "w") as out:
            vs = out.add_stream("libx264", rate=10, options={"crf": "0"})
            vs.width, vs.height, vs.pix_fmt = w, h, "yuv444p"
            rgb = av.VideoFrame.from_ndarray(np.full((h, w, 3), colour, np.uint8), format="rgb24")
            for packet in vs.encode(rgb.reformat(format="yuv444p", dst_colorspace=matrix)):
                out.mux(packet)
            for packet in vs.encode(None):
                out.mux(packet)
        with av.open(str(src)) as c:
            assert c.streams.video[0].codec_context.colorspace == 2  # unspecified: no tag
            frame = next(c.decode(video=0))
            for got in (_frame_array(frame).reshape(-1, 3), _frame_planes(frame).reshape(3, -1).T):
                assert np.abs(got.mean(axis=0) - colour).max() < 3, (w, h, got.mean(axis=0))


def test_pcm_audio_is_reencoded_to_aac(tmp_path, model):
    src, dst = tmp_path / "in.mov", tmp_path / "out.mp4"
    make_clip(src, audio="pcm_s16le")
    upscale_video(src, dst, model)
    facts = stream_facts(dst)
    assert facts["audio"]["codec"] == "aac"
    assert facts["audio"]["seconds"] == pytest.approx(1.0, abs=0.06)


def test_no_audio_in_no_audio_out(tmp_path, model):
    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(src, audio=None)
    upscale_video(src, dst, model)
    assert stream_facts(dst)["audio"] is None


def test_variable_frame_rate_is_kept(tmp_path, model):
    src, dst = tmp_path / "vfr.mp4", tmp_path / "out.mp4"
    make_clip(src, pts=[0, 1, 2, 5, 6, 10, 11, 12], audio=None)
    upscale_video(src, dst, model)
    a, b = stream_facts(src)["times"], stream_facts(dst)["times"]
    assert np.allclose(a, b, atol=1e-3) and len(set(np.round(np.diff(b), 3))) > 1


def test_odd_sizes_rotation_and_ten_bit(tmp_path):
    x3 = lightsr.create_model("rdn-test", scale=3).eval()
    src, dst = tmp_path / "odd.mp4", tmp_path / "out.mp4"
    make_clip(src, w=34, h=22, audio=None)  # 3x -> 102x66
    upscale_video(src, dst, x3)
    f = stream_facts(dst)
    assert (f["width"], f["height"]) == (102, 66)
    rot, dst2 = tmp_path / "rot.mp4", tmp_path / "out2.mp4"
    make_clip(rot, w=64, h=48, audio=None, rotation=90)
    upscale_video(rot, dst2, lightsr.create_model("rdn-test").eval())
    f2 = stream_facts(dst2)
    assert (f2["width"], f2["height"]) == (96, 128)  # upright: rotation applied to the pixels
    ten, dst3 = tmp_path / "ten.mp4", tmp_path / "out3.mp4"
    make_clip(ten, audio=None, pix_fmt="yuv420p10le")
    upscale_video(ten, dst3, lightsr.create_model("rdn-test").eval())
    assert stream_facts(dst3)["pix_fmt"] == "yuv420p"


@pytest.mark.parametrize("case", ["text", "still", "still-gif", "audio-only", "truncated", "empty", "zero-frames",
                                  "too-long", "too-big"])
def test_bad_input_is_a_clear_error_and_leaves_nothing(tmp_path, model, case):
    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    kwargs = {}
    if case == "text":
        src.write_text("this is not a video")
        match = "not a video file"
    elif case == "still":  # a PNG under a video's name: FFmpeg would read it as a one-frame video
        Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(src, format="PNG")
        match = r"a still image \(piped png sequence\), not a video"
    elif case == "still-gif":  # one frame: a picture (an animated GIF runs: test_an_animated_gif_is_a_video)
        src = tmp_path / "in.gif"
        Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(src)
        match = r"a still image \(CompuServe Graphics Interchange Format \(GIF\)\), not a video"
    elif case == "audio-only":
        make_audio_only(src)
        match = "audio-only"
    elif case == "truncated":
        make_clip(tmp_path / "full.mp4", frames=30)
        src.write_bytes((tmp_path / "full.mp4").read_bytes()[:600])
        match = "not a video file|could not be decoded|no frames"
    elif case == "empty":
        src.touch()
        match = "empty"
    elif case == "zero-frames":
        src = tmp_path / "in.mkv"  # Matroska keeps a declared track that has no frames
        _zero_frame_clip(src)
        match = "no frames"
    elif case == "too-long":
        make_clip(src, frames=30, audio=None)
        kwargs = {"max_seconds": 2}
        match = "3.0 s long, over the limit of 2 s"
    else:
        make_clip(src, audio=None)
        kwargs = {"max_pixels": 1000}
        match = "64x48 frames are over the limit of 1,000 pixels"
    with pytest.raises(lightsr.LightSRError, match=match):
        upscale_video(src, dst, model, **kwargs)
    assert not dst.exists() and not list(tmp_path.glob(".out*"))


def test_an_animated_gif_is_a_video(tmp_path, model):
    frames = [Image.fromarray(np.full((24, 32, 3), 60 * k, np.uint8)) for k in range(3)]
    frames[0].save(tmp_path / "in.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    upscale_video(tmp_path / "in.gif", tmp_path / "out.mp4", model)
    with av.open(str(tmp_path / "out.mp4")) as out:
        assert sum(1 for _ in out.decode(video=0)) == 3


def _zero_frame_clip(path):
    """An MP4 that declares a video stream but holds only audio packets."""
    import av

    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=10)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        a = out.add_stream("aac", rate=44100)
        a.layout = "mono"
        for k in range(0, 44100, 1024):
            af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            af.sample_rate, af.pts = 44100, k
            for packet in a.encode(af):
                out.mux(packet)


def test_limits_are_checked_before_work(tmp_path, model, monkeypatch):
    src = tmp_path / "long.mp4"
    make_clip(src, frames=30, audio=None)

    def no_model(*args, **kwargs):
        raise AssertionError("the model must not run")

    monkeypatch.setattr(model, "forward", no_model)
    with pytest.raises(lightsr.LightSRError, match="over the limit"):
        upscale_video(src, tmp_path / "out.mp4", model, max_seconds=1)


def test_probe_and_sample_frames(tmp_path):
    src = tmp_path / "in.mp4"
    make_clip(src, frames=25, audio=None)
    info = probe_video(src)
    assert (info.width, info.height, info.frames) == (64, 48, 25) and info.fps == pytest.approx(10)
    frames = list(sample_frames(src, every_seconds=1.0))
    assert len(frames) == 3 and frames[0].size == (64, 48)  # t = 0, 1, 2 s


def test_cli_video_and_frames(tmp_path, capsys):
    src = tmp_path / "in.mp4"
    make_clip(src, frames=20, audio=None)
    folder = tmp_path / "m"
    lightsr.create_model("rdn-test").save_pretrained(folder)
    assert cli.main(["video", str(src), str(tmp_path / "out.mp4"), "--model", str(folder), "--crf", "23"]) == 0
    assert stream_facts(tmp_path / "out.mp4")["width"] == 128
    assert cli.main(["frames", str(src), str(tmp_path / "frames"), "--every", "1s"]) == 0
    assert len(list((tmp_path / "frames").glob("*.png"))) == 2
    assert cli.main(["frames", str(src), str(tmp_path / "f2"), "--every", "soon"]) == 2
    assert "--every must look like" in capsys.readouterr().err
