"""The Python side of data/prepare_cold_scale_macenko: what a user would write with PIL and
numpy to preprocess BACH photos at a scale with Macenko stain normalisation - decode,
shrink by area averaging (PIL's BOX filter), normalise, stack into one uint8 array.
The Macenko recipe is the one host/data/stain.cpp implements (OD = -ln((v+1)/256), tissue
where the OD vector is at least beta = 0.15 long, covariance eigenvectors, 1st/99th percentile angles, least squares, 99th percentile
maxima), so both sides do the same work.

Usage: /usr/bin/python3 bench/data/prep_macenko.py PHOTOS_DIR SCALE WORKERS
The target is fitted on the first photo before the clock starts (the C++ benchmark does
the same); the time is decode + resize + normalise of every photo on WORKERS processes.
"""
import pathlib
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image

BETA, ALPHA = 0.15, 1.0


def load(path, scale):
    image = Image.open(path).convert("RGB")
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return np.asarray(image.resize(size, Image.BOX))


def unit(v):
    v = -v if v.sum() < 0 else v
    return v / np.linalg.norm(v)


def fit(od):
    """Stain vectors (3x2, H then E) and 99th-percentile concentrations of tissue OD rows."""
    tissue = od[np.linalg.norm(od, axis=1) >= BETA]
    _, vectors = np.linalg.eigh(np.cov(tissue.T))
    v0, v1 = unit(vectors[:, 2]), unit(vectors[:, 1])
    angle = np.arctan2(tissue @ v1, tissue @ v0)
    lo, hi = np.percentile(angle, ALPHA), np.percentile(angle, 100 - ALPHA)
    a = unit(v0 * np.cos(lo) + v1 * np.sin(lo))
    b = unit(v0 * np.cos(hi) + v1 * np.sin(hi))
    stains = np.stack([a, b] if a[0] > b[0] else [b, a], axis=1)
    concentrations = np.linalg.lstsq(stains, tissue.T, rcond=None)[0]
    return stains, np.percentile(concentrations, 99, axis=1)


def optical_density(rgb):
    return -np.log((rgb.reshape(-1, 3).astype(np.float64) + 1) / 256)


def normalise(rgb, target):
    od = optical_density(rgb)
    stains, maxima = fit(od)
    concentrations = np.linalg.lstsq(stains, od.T, rcond=None)[0]
    concentrations *= (target[1] / maxima)[:, None]
    out = 256 * np.exp(-(target[0] @ concentrations)) - 1
    return np.clip(np.rint(out.T), 0, 255).astype(np.uint8).reshape(rgb.shape)


def prepare(args):
    path, scale, target = args
    return normalise(load(path, scale), target)


def main():
    root, scale, workers = pathlib.Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    files = sorted(p for p in root.glob("*/*") if p.suffix.lower() in (".tif", ".tiff", ".png", ".jpg", ".jpeg"))
    target = fit(optical_density(load(files[0], scale)))
    start = time.time()
    with ProcessPoolExecutor(workers) as pool:
        images = np.stack(list(pool.map(prepare, [(f, scale, target) for f in files], chunksize=4)))
    seconds = time.time() - start
    print(f"python PIL+numpy macenko: {len(files)} photos -> {images.shape} uint8 in {seconds:.2f} s = "
          f"{1000 * seconds / len(files):.1f} ms/photo ({len(files) / seconds:.2f} photos/s, {workers} processes)")


if __name__ == "__main__":
    main()
