"""What the flare default does to real flare: docs/flare-real-photos.jpg, from data/flare-photos.

    python docs/make_real_photos.py

Each photo of data/flare-photos (night photos with real lens flare, public domain; no clean version
exists, so nothing here is measured) through the app's and the command line's default, the Pix2Pix +
NF-ResUNet ensemble (zoo.default_names), with the PyTorch backend so the picture is the same pixels on
every machine: one row per photo, the whole frame before | after, and below it a region round its lamps
enlarged to the same width, before | after.
"""

import sys
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lightsr import open_image, zoo  # noqa: E402
from lightsr.flare import remove_flare  # noqa: E402

PHOTOS = ROOT / "data" / "flare-photos"
# a region round each photo's lamps, as fractions of its width and height (left, top, right, bottom)
REGIONS = {"launch-pad.jpg": (0.1, 0.7, 0.55, 1.0), "roebling-bridge.jpg": (0.0, 0.12, 0.36, 0.43)}
WIDTH = 640  # px: each half of a row
GAP = 8


def row(before: Image.Image, after: Image.Image, region: tuple[float, float, float, float]) -> Image.Image:
    """The whole frames side by side at WIDTH px each, over the region's crops, enlarged to the same width."""
    w, h = before.size
    box = tuple(round(f * s) for f, s in zip(region, (w, h, w, h)))
    frames = [im.resize((WIDTH, round(h * WIDTH / w)), Image.LANCZOS) for im in (before, after)]
    crops = [im.crop(box) for im in (before, after)]
    crops = [c.resize((WIDTH, round(c.height * WIDTH / c.width)), Image.LANCZOS) for c in crops]
    out = Image.new("RGB", (2 * WIDTH + GAP, frames[0].height + GAP + crops[0].height), "white")
    for i, (frame, crop) in enumerate(zip(frames, crops)):
        out.paste(frame, (i * (WIDTH + GAP), 0))
        out.paste(crop, (i * (WIDTH + GAP), frames[0].height + GAP))
        f = WIDTH / w  # the region, outlined on the frame
        ImageDraw.Draw(out).rectangle([i * (WIDTH + GAP) + box[0] * f, box[1] * f, i * (WIDTH + GAP) + box[2] * f - 1,
                                       box[3] * f - 1], outline=(255, 255, 255))
    return out


def main() -> None:
    model, *ensemble = [zoo.resolve(name) for name in zoo.default_names("flare-removal")]
    rows = []
    for name, region in REGIONS.items():
        photo = open_image(PHOTOS / name).convert("RGB")
        rows.append(row(photo, remove_flare(model, photo, ensemble=ensemble, backend="torch"), region))
        print(name, flush=True)
    sheet = Image.new("RGB", (rows[0].width, sum(r.height for r in rows) + GAP * (len(rows) - 1)), "white")
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height + GAP
    sheet.save(ROOT / "docs" / "flare-real-photos.jpg", quality=88)


if __name__ == "__main__":
    main()
