#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

Every seed is small (a few KB at most) and made here, so the corpus can be rebuilt:

  config        configs/ files (a config + the base it extends + command-line overrides,
                joined by lines holding only %%), and a few hand-made edge cases
  ground_truth  the CSV `bachlab synth` writes (same rows as tests/data's fixtures), with a
                header, a byte-order mark, CRLF ends, and the mistakes the tests check
  image_decode  tiny photos in each layout the decoder has a path for: TIFF (strips, tiles,
                planar, 8/16-bit, gray, palette, LZW/Deflate/PackBits/JPEG), PNG (gray,
                RGB, RGBA, 16-bit), JPEG (baseline, progressive, gray)

Usage: /usr/bin/python3 tests/fuzz/make_seeds.py [build/release/bachlab]
  (needs python3-pil and python3-numpy; with the bachlab program, a synthetic photo too)
"""

import io
import os
import re
import struct
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(folder, name), "wb") as out:
        out.write(data)


def config_seeds():
    def read(name):
        with open(os.path.join(ROOT, "configs", name), encoding="utf-8") as f:
            return f.read()

    # A leaf and the base it extends, renamed to the harness's base.toml.
    write("config", "model3c_on_base",
          re.sub(r'(?m)^extends = .*$', 'extends = "base.toml"', read("model3c.toml")) + "\n%%\n" + read("base.toml") +
          "\n%%\ntrain.epochs=5\noptimizer.lr=3e-4\nmodel.plugin=model4b\ndata.classes=[\"a\", \"b\"]\n")
    write("config", "quickstart", read("quickstart.toml"))
    write("config", "bach_best", read("bach_best.toml"))
    write("config", "tune_quick", read("tune/model4a_quick.toml"))
    write("config", "resnet50_transfer", read("resnet50_transfer.toml"))
    write("config", "cycle", 'extends = "base.toml"\n[train]\nepochs = 1\n%%\nextends = "main.toml"\n')
    write("config", "extends_folder", 'extends = "."\n')
    write("config", "data_tables",
          '[data]\nsource = "synthetic"\nroot = "x"\nclasses = ["a", "b", "a"]\nscale = 0.001\nmax_pixels = 0\n'
          'image_size = 4097\nworkers = -1\n[data.synthetic]\nper_class = 2\nwidth = 16\nheight = 12\n'
          '[data.split]\nfolds = 1\ntrain = 0.5\nval = nan\ntest = inf\n[[augment]]\nplugin = "flip"\n'
          '[[augment]]\nplugin = "affine"\ncval = -inf\n[tune.space.model.filters]\nvalues = [1, 2.5, "x", true]\n'
          '%%\n\n%%\ndata.image_size=64\ndata.classes=[1,2]\naugment.plugin=x\ndata=1\n"quoted".key=1\nnot an override\n')
    write("config", "types",
          'a = 1979-05-27T07:32:00Z\n[t]\nlist = [[1, 2], [3]]\ns = """multi\nline"""\nx = 0x7fffffffffffffff\n'
          'y = -0x1\nz = 1e309\n"key with spaces" = \'literal\'\n[t."dotted.key"]\nv = +nan\n')


def ground_truth_seeds():
    rows = [f"{p}00{i}.tif,{c}" for p, c in (("n", "Normal"), ("b", "Benign"), ("is", "InSitu"), ("iv", "Invasive"))
            for i in (1, 2, 3)]
    write("ground_truth", "synth", "\n".join(rows) + "\n")
    write("ground_truth", "bom_header_crlf", "\ufeffname,label\r\n" + "\r\n".join(rows) + "\r\n")
    write("ground_truth", "mistakes",
          "n001.tif,Normal\nn001.tif,Normal\nb001.tif,Benin\nis001.tif\n,Normal\niv001.tif,Normal\n"
          "missing.tif,InSitu\nshared.tif,Benign\nshared.tif,InSitu\n  iv002.tif , Invasive , x\n\n\t\n")


def tiff(width, height, samples, bits, planes_data, photometric, tiles=None, planar=1, big_endian=False,
         extra=()):
    """A TIFF written by hand: uncompressed, strips (one per plane) or tiles, so the layouts
    PIL cannot write (tiles, planar separate, 16-bit RGB, big-endian) get a seed too."""
    e = ">" if big_endian else "<"
    head = (b"MM\x00\x2a" if big_endian else b"II\x2a\x00") + struct.pack(e + "I", 8)
    chunks = planes_data  # list of bytes, one per strip or tile
    entries = []  # (tag, type, count, values)
    SHORT, LONG = 3, 4
    entries.append((256, LONG, 1, [width]))
    entries.append((257, LONG, 1, [height]))
    entries.append((258, SHORT, samples, [bits] * samples))
    entries.append((259, SHORT, 1, [1]))
    entries.append((262, SHORT, 1, [photometric]))
    entries.append((277, SHORT, 1, [samples]))
    entries.append((284, SHORT, 1, [planar]))
    if tiles:
        entries.append((322, LONG, 1, [tiles[0]]))
        entries.append((323, LONG, 1, [tiles[1]]))
        entries.append((324, LONG, len(chunks), None))  # offsets, filled below
        entries.append((325, LONG, len(chunks), [len(c) for c in chunks]))
    else:
        entries.append((273, LONG, len(chunks), None))
        entries.append((278, LONG, 1, [height]))
        entries.append((279, LONG, len(chunks), [len(c) for c in chunks]))
    entries.extend(extra)
    entries.sort(key=lambda x: x[0])
    ifd_size = 2 + 12 * len(entries) + 4
    cursor = 8 + ifd_size
    out_of_line = b""
    data_start = None

    def values_bytes(kind, values):
        return b"".join(struct.pack(e + ("H" if kind == SHORT else "I"), v) for v in values)

    # Out-of-line values first, then the image data.
    layout = []
    for tag, kind, count, values in entries:
        size = count * (2 if kind == SHORT else 4)
        layout.append((tag, kind, count, values, size))
    extra_size = sum(size for *_, size in layout if size > 4)
    data_start = cursor + extra_size
    offsets, at = [], data_start
    for c in chunks:
        offsets.append(at)
        at += len(c)
    ifd = struct.pack(e + "H", len(layout))
    for tag, kind, count, values, size in layout:
        if values is None:
            values = offsets
        raw = values_bytes(kind, values)
        if size > 4:
            ifd += struct.pack(e + "HHII", tag, kind, count, cursor + len(out_of_line))
            out_of_line += raw
        else:
            ifd += struct.pack(e + "HHI", tag, kind, count) + raw.ljust(4, b"\x00")
    ifd += struct.pack(e + "I", 0)
    return head + ifd + out_of_line + b"".join(chunks)


def image_seeds(bachlab):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (6, 8), dtype=np.uint8)
    rgb16 = rng.integers(0, 65536, (6, 8, 3), dtype=np.uint16)
    if bachlab:  # one photo of the synthetic set, as `bachlab synth` draws it
        with tempfile.TemporaryDirectory() as folder:
            subprocess.run([bachlab, "synth", "--out", os.path.join(folder, "s"), "--per-class", "1", "--size",
                            "16x12", "--workers", "1"], check=True, stdout=subprocess.DEVNULL)
            with open(os.path.join(folder, "s", "Photos", "Normal", "n001.tif"), "rb") as f:
                write("image_decode", "synth_16x12.tif", f.read())

    def pil(image, fmt, **options):
        buffer = io.BytesIO()
        image.save(buffer, fmt, **options)
        return buffer.getvalue()

    im = Image.fromarray(rgb, "RGB")
    write("image_decode", "rgb_lzw.tif", pil(im, "TIFF", compression="tiff_lzw"))
    write("image_decode", "rgb_deflate.tif", pil(im, "TIFF", compression="tiff_adobe_deflate"))
    write("image_decode", "rgb_packbits.tif", pil(im, "TIFF", compression="packbits"))
    write("image_decode", "rgb_jpeg.tif", pil(im, "TIFF", compression="jpeg"))
    write("image_decode", "rgba.tif", pil(Image.fromarray(np.dstack([rgb, gray]), "RGBA"), "TIFF"))
    write("image_decode", "gray16.tif", pil(Image.fromarray(gray.astype(np.uint16) * 257, "I;16"), "TIFF"))
    write("image_decode", "palette.tif", pil(im.convert("P"), "TIFF"))
    write("image_decode", "bilevel.tif", pil(im.convert("1"), "TIFF"))
    write("image_decode", "cmyk.tif", pil(im.convert("CMYK"), "TIFF"))
    write("image_decode", "tiled_rgb.tif",
          tiff(8, 6, 3, 8, [bytes(rng.integers(0, 256, 16 * 16 * 3, dtype=np.uint8))], 2, tiles=(16, 16)))
    write("image_decode", "planar_rgb.tif",
          tiff(8, 6, 3, 8, [rgb[:, :, c].tobytes() for c in range(3)], 2, planar=2))
    write("image_decode", "rgb16_be.tif", tiff(8, 6, 3, 16, [rgb16.astype(">u2").tobytes()], 2, big_endian=True))
    write("image_decode", "miniswhite.tif", tiff(8, 6, 1, 8, [gray.tobytes()], 0))
    write("image_decode", "float.tif", tiff(2, 2, 1, 32, [b"\x00" * 16], 1, extra=[(339, 3, 1, [3])]))

    write("image_decode", "rgb.png", pil(im, "PNG"))
    write("image_decode", "gray.png", pil(Image.fromarray(gray, "L"), "PNG"))
    write("image_decode", "rgba.png", pil(Image.fromarray(np.dstack([rgb, gray]), "RGBA"), "PNG"))
    write("image_decode", "gray16.png", pil(Image.fromarray(gray.astype(np.uint16) * 257, "I;16"), "PNG"))
    write("image_decode", "palette.png", pil(im.convert("P"), "PNG"))
    write("image_decode", "baseline.jpg", pil(im, "JPEG", quality=80))
    write("image_decode", "progressive.jpg", pil(im, "JPEG", quality=80, progressive=True))
    write("image_decode", "gray.jpg", pil(Image.fromarray(gray, "L"), "JPEG"))


if __name__ == "__main__":
    config_seeds()
    ground_truth_seeds()
    image_seeds(sys.argv[1] if len(sys.argv) > 1 else None)
    for target in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, target))
        size = sum(os.path.getsize(os.path.join(CORPUS, target, f)) for f in files)
        print(f"{target}: {len(files)} seeds, {size} bytes")
