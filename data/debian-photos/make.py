"""Rebuild this folder from Debian's wallpaper packages (run on a Debian machine, as any user).

    python data/debian-photos/make.py

It downloads the four packages with ``apt-get download`` (no install), unpacks them into a
temporary folder, and writes each photo listed in PHOTOS as a JPEG (quality 95, no chroma
subsampling) at most 1280 px on its long side, downscaled with Pillow's Lanczos filter. The
sources are 1.3 to 5 MP wallpapers; downscaling also averages away their JPEG noise, so the
results serve as clean high-resolution targets. Only photographs were picked: renders,
illustrations and gradients from the same packages are left out, and so is one sunset shot
straight into the sun (it carries a real lens flare, which would be a wrong "clean" target).
"""
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
LONG_SIDE = 1280

# (package, path inside the package, output name, author, licence)
PHOTOS = [
    ("lomiri-wallpapers-16.04", "usr/share/backgrounds/Bridge_by_Sander_Klootwijk.jpg", "bridge", "Sander Klootwijk", "CC-BY-SA-4.0"),
    ("lomiri-wallpapers-16.04", "usr/share/backgrounds/Dragonfly_by_Bolly.jpg", "dragonfly", "Bolly", "CC-BY-SA-4.0"),
    ("lomiri-wallpapers-16.04", "usr/share/backgrounds/Picture_0B_by_freespace.jpg", "fig", "Trevor \"Freespace\"", "CC-BY-4.0"),
    ("lomiri-wallpapers-16.04", "usr/share/backgrounds/Picture_1A_by_freespace.jpg", "brushes", "Trevor \"Freespace\"", "CC-BY-4.0"),
    ("lomiri-wallpapers-16.04", "usr/share/backgrounds/Wine_by_Jakkub_Mede.jpg", "wine", "Jakub Mede", "CC-BY-4.0"),
    ("lomiri-wallpapers-16.04", "usr/share/backgrounds/aitzgorri_by_Aitzol_Berasategi.jpg", "aitzgorri", "Aitzol Berasategi", "CC-BY-4.0"),
    ("lomiri-wallpapers-16.04", "usr/share/backgrounds/free_by_Peter_Nerlich.jpg", "free", "Peter Nerlich", "CC-BY-SA-4.0"),
    ("lomiri-wallpapers-16.04", "usr/share/backgrounds/friends_by_Aitzol_Berasategi.jpg", "friends", "Aitzol Berasategi", "CC-BY-4.0"),
    ("lomiri-wallpapers-16.04", "usr/share/backgrounds/life_by_Aitzol_Berasategi.jpg", "life", "Aitzol Berasategi", "CC-BY-4.0"),
    ("lomiri-wallpapers-16.04", "usr/share/backgrounds/picosdeeuropa_by_Aitzol_Berasategi.jpg", "picosdeeuropa", "Aitzol Berasategi", "CC-BY-4.0"),
    ("lomiri-wallpapers-16.04", "usr/share/backgrounds/seeding_by_Clements_Engelhardt.jpg", "seeding", "Clemens Engelhardt", "CC0-1.0"),
    ("lomiri-wallpapers-20.04", "usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg", "kleiber", "Lukas Baubkus", "CC-BY-SA-3.0"),
    ("mate-backgrounds", "usr/share/backgrounds/mate/nature/Aqua.jpg", "aqua", "Charles Barbin", "GPL-2+"),
    ("mate-backgrounds", "usr/share/backgrounds/mate/nature/Blinds.jpg", "blinds", "Lennart Poettering, Andrea Cimitan", "GPL-2+"),
    ("mate-backgrounds", "usr/share/backgrounds/mate/nature/Dune.jpg", "dune", "Marco Cogoni, Hylke Bons", "GPL-2+"),
    ("mate-backgrounds", "usr/share/backgrounds/mate/nature/Garden.jpg", "garden", "Charles Barbin", "GPL-2+"),
    ("mate-backgrounds", "usr/share/backgrounds/mate/nature/GreenMeadow.jpg", "greenmeadow", "Timothy Schellhase, Lapo Calamandrei", "GPL-2+"),
    ("mate-backgrounds", "usr/share/backgrounds/mate/nature/LadyBird.jpg", "ladybird", "Charles Barbin", "GPL-2+"),
    ("mate-backgrounds", "usr/share/backgrounds/mate/nature/RainDrops.jpg", "raindrops", "blackcombwhistler07", "GPL-2+"),
    ("mate-backgrounds", "usr/share/backgrounds/mate/nature/Storm.jpg", "storm", "Sergey Nazarov", "GPL-2+"),
    ("mate-backgrounds", "usr/share/backgrounds/mate/nature/TwoWings.jpg", "twowings", "Charles Barbin, Hylke Bons", "GPL-2+"),
    ("mate-backgrounds", "usr/share/backgrounds/mate/nature/Wood.jpg", "wood", "Jean-François Fortin Tam", "GPL-2+"),
    ("mate-backgrounds", "usr/share/backgrounds/mate/nature/YellowFlower.jpg", "yellowflower", "Charles Barbin", "GPL-2+"),
    ("plasma-workspace-wallpapers", "usr/share/wallpapers/BytheWater/contents/images/2560x1600.jpg", "bythewater", "Maciej Wiklo", "LGPL-3"),
    ("plasma-workspace-wallpapers", "usr/share/wallpapers/ColdRipple/contents/images/2560x1600.jpg", "coldripple", "Risto Saukonpää", "LGPL-3"),
    ("plasma-workspace-wallpapers", "usr/share/wallpapers/ColorfulCups/contents/images/2560x1600.jpg", "colorfulcups", "Dmitri Popov", "LGPL-3"),
    ("plasma-workspace-wallpapers", "usr/share/wallpapers/DarkestHour/contents/images/2560x1600.jpg", "darkesthour", "Risto Saukonpää", "LGPL-3"),
    ("plasma-workspace-wallpapers", "usr/share/wallpapers/EveningGlow/contents/images/2560x1600.jpg", "eveningglow", "Ian Hex", "LGPL-3"),
    ("plasma-workspace-wallpapers", "usr/share/wallpapers/FallenLeaf/contents/images/2560x1600.jpg", "fallenleaf", "Martin Klapetek", "LGPL-3"),
    ("plasma-workspace-wallpapers", "usr/share/wallpapers/Grey/contents/images/2560x1600.jpg", "grey", "Sigi Sagi", "LGPL-3"),
    ("plasma-workspace-wallpapers", "usr/share/wallpapers/Kite/contents/images/2560x1600.jpg", "kite", "Risto Saukonpää", "LGPL-3"),
    ("plasma-workspace-wallpapers", "usr/share/wallpapers/OneStandsOut/contents/images/2560x1600.jpg", "onestandsout", "Risto Saukonpää", "LGPL-3"),
    ("plasma-workspace-wallpapers", "usr/share/wallpapers/Path/contents/images/2560x1600.jpg", "path", "Risto Saukonpää", "LGPL-3"),
    ("plasma-workspace-wallpapers", "usr/share/wallpapers/summer_1am/contents/images/2560x1600.jpg", "summer_1am", "Risto Saukonpää", "LGPL-3"),
]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        packages = sorted({p for p, *_ in PHOTOS})
        subprocess.run(["apt-get", "download", *packages], cwd=tmp, check=True)
        for package in packages:
            deb = next(tmp.glob(f"{package}_*.deb"))
            subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp / package)], check=True)
        for package, inner, name, _, _ in PHOTOS:
            im = Image.open(tmp / package / inner).convert("RGB")
            scale = LONG_SIDE / max(im.size)
            if scale < 1:
                im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
            im.save(HERE / f"{name}.jpg", quality=95, subsampling=0)
            print(f"{name}.jpg {im.width}x{im.height}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
