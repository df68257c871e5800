"""Write the calibration crops that int8 quantization measures activation ranges on.

    python data/debian-photos/make_calibration.py

``lightsr.backends`` quantizes a model to int8 (``precision="int8"``) by running it on natural
image content and recording the range of every activation (NNCF post-training quantization);
it also checks the result against fp32 on crops it did not calibrate on. Those crops ship with
the package (``lightsr/calibration/crops.jpg``), since a pip install has no ``data/``. They come
from the photos of this folder whose licence asks for no more than attribution (CC0-1.0 and
CC-BY-4.0; credited in ``lightsr/calibration/README.md``): each photo halved with Lanczos, as
low-resolution input is smoother than a full-size photo, then two 128 px squares of it: the
most detailed of eight seeded candidates and one seeded at random, so flat areas are in too.
The squares are tiled 4 x 4 into one 512 px JPEG (quality 95, 4:4:4).
"""
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
OUT = HERE.parent.parent / "lightsr" / "calibration" / "crops.jpg"
PHOTOS = ["seeding", "fig", "brushes", "wine", "aitzgorri", "friends", "life", "picosdeeuropa"]  # CC0 / CC-BY-4.0
SIDE, CANDIDATES = 128, 8


def detail(a: np.ndarray) -> float:
    g = a.astype(np.float32).mean(axis=2)
    return float(np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean())


def main() -> None:
    rng = np.random.default_rng(2026)
    tiles = []
    for name in PHOTOS:
        img = Image.open(HERE / f"{name}.jpg").convert("RGB")
        img = img.resize((img.width // 2, img.height // 2), Image.LANCZOS)
        a = np.asarray(img)
        spots = [(rng.integers(0, a.shape[0] - SIDE + 1), rng.integers(0, a.shape[1] - SIDE + 1))
                 for _ in range(CANDIDATES + 1)]
        crops = [a[y:y + SIDE, x:x + SIDE] for y, x in spots]
        tiles += [max(crops[:CANDIDATES], key=detail), crops[CANDIDATES]]
    rows = [np.concatenate(tiles[i:i + 4], axis=1) for i in range(0, len(tiles), 4)]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(OUT, quality=95, subsampling=0)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
