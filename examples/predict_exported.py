#!/usr/bin/env python3
"""Class probabilities of photos from what `bachlab export` wrote, without bachlab.

    python3 examples/predict_exported.py EXPORT_DIR PHOTO... > probabilities.json

Reads EXPORT_DIR/model.pt and EXPORT_DIR/preprocessing.json and does what
`bachlab predict RUN PHOTO --format json` does around the model (docs/export.md, steps
1-6): decode, resize, stain normalisation, patch grid, TTA, aggregation. The output is the
same JSON list, and the probabilities agree with bachlab's to 1e-4 (a ctest checks it:
Python.ExportedModelReproducesPredict).

Needs PyTorch and OpenCV's Python module (Debian: python3-torch python3-opencv).
Reproduced: runs without stain normalisation and with Reinhard's. Not reproduced here:
Macenko's normalisation and aggregate = "learned" (export refuses the latter).
"""
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

GLASS_LEVEL = 220  # a pixel with some channel below this is tissue (min_tissue)
STAIN_BETA = 0.15  # optical density length from which a pixel is tissue (stain fits)
MIN_TISSUE_PIXELS = 8
MIN_TISSUE_FRACTION = 0.01


def decode_rgb(path):
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"{path}: OpenCV cannot read it as an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def resize(rgb, how):
    h, w = rgb.shape[:2]
    if how.get("scale", 0) > 0:
        # C++'s lround: halves away from zero (Python's round() would go to even).
        size = tuple(max(1, math.floor(side * how["scale"] + 0.5)) for side in (w, h))
        if size == (w, h):
            return rgb
        shrinks = size[0] < w or size[1] < h
    else:
        size = (how["image_size"], how["image_size"])
        shrinks = w > size[0] or h > size[1]
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if shrinks else cv2.INTER_LINEAR)


def enough_tissue(rgb):
    # -log((v + 1) / 256) per channel, in float32 as bachlab's table holds it.
    od = (-np.log((np.arange(256) + 1) / 256.0)).astype(np.float32)[rgb]
    tissue = int(((od * od).sum(axis=2, dtype=np.float32) >= np.float32(STAIN_BETA * STAIN_BETA)).sum())
    return tissue >= MIN_TISSUE_PIXELS and tissue >= MIN_TISSUE_FRACTION * rgb.shape[0] * rgb.shape[1]


def reinhard(rgb, target):
    # A photo with too little tissue is left as it is.
    if not enough_tissue(rgb):
        return rgb
    lab = cv2.cvtColor(rgb.astype(np.float32) * np.float32(1.0 / 255.0), cv2.COLOR_RGB2Lab)
    pixels = lab.reshape(-1, 3).astype(np.float64)
    mean = pixels.mean(axis=0)
    std = np.sqrt(np.maximum(0.0, (pixels * pixels).mean(axis=0) - mean * mean))
    for k in range(3):
        # A flat channel has no spread to match: only its mean moves.
        ratio = target["lab_std"][k] / std[k] if std[k] > 1e-6 else 1.0
        lab[:, :, k] = lab[:, :, k] * np.float32(ratio) + np.float32(target["lab_mean"][k] - mean[k] * ratio)
    back = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    return np.clip(np.rint(back * 255.0), 0, 255).astype(np.uint8)


def grid_starts(length, size, stride):
    if size > length:
        raise SystemExit(f"a patch of {size} pixels does not fit in an image side of {length} pixels")
    stride = stride if stride > 0 else size
    starts = list(range(0, length - size, stride))  # while a patch ends before the edge
    return starts + [length - size]                 # and one ending at it


def tta_views(x, tta):
    if tta == "none":
        return [x]
    if tta == "flips":
        return [x, x.flip(3), x.flip(2), x.flip(2, 3)]
    if tta == "d4":
        return [torch.rot90(v, k, (2, 3)) for v in (x, x.flip(3)) for k in range(4)]
    raise SystemExit(f"unknown tta {tta!r}")


def aggregate(p, how):
    mean = p.mean(0)
    if how == "mean":
        return mean
    if how == "vote":
        votes = torch.bincount(p.argmax(1), minlength=p.shape[1]).to(p.dtype) / p.shape[0]
        bonus = 0.5 / p.shape[0]  # half a vote at most for the mean: it breaks ties only
        return (votes + mean * bonus) / (1.0 + bonus)
    if how == "max":
        top = p.max(0).values
        return top / top.sum().clamp_min(1e-12)
    raise SystemExit(f"aggregate {how!r} is not reproduced here")


@torch.no_grad()
def predict(model, prep, path):
    rgb = resize(decode_rgb(path), prep["resize"])
    stain = prep["stain"]
    if stain is not None:
        if stain["method"] != "reinhard":
            raise SystemExit(f"stain normalisation {stain['method']!r} is not reproduced here (only reinhard)")
        rgb = reinhard(rgb, stain)
    photo = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)  # uint8 (3, H, W)
    grid = prep["photo"]
    size = grid["patch_size"]
    if size == 0:
        patches = photo.unsqueeze(0)
    else:
        patches = torch.stack([photo[:, y:y + size, x:x + size]
                               for y in grid_starts(photo.shape[1], size, grid["stride"])
                               for x in grid_starts(photo.shape[2], size, grid["stride"])])
    if grid["min_tissue"] > 0:
        tissue = (patches < GLASS_LEVEL).any(1).float().mean((1, 2))
        counted = tissue >= grid["min_tissue"]
        if counted.any():
            patches = patches[counted]
    x = patches.float() / 255.0
    views = tta_views(x, grid["tta"])
    p = sum(model(v.contiguous()).float() for v in views) / len(views)
    photo_p = aggregate(p, grid["aggregate"]).double()
    classes = prep["classes"]
    return {"image": str(path), "predicted": classes[int(photo_p.argmax())],
            "probabilities": {c: float(v) for c, v in zip(classes, photo_p)}}


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    folder = Path(sys.argv[1])
    prep = json.loads((folder / "preprocessing.json").read_text())
    model = torch.jit.load(str(folder / prep["model"]))
    model.eval()
    json.dump([predict(model, prep, Path(p)) for p in sys.argv[2:]], sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
