#!/usr/bin/python3
"""The plain PyTorch half of the training-loop comparison (see compare.sh).

Reads what bench/reference_loop wrote to FOLDER (uint8 photos, labels, the model's initial
weights and a manifest), rebuilds Model 4A with the plugin's default settings as a
torch.nn.Sequential whose parameter names and shapes must equal the plugin's, and refuses to
time anything unless its loss on the first batch equals the manifest's: the two sides then
hold the same network, the same weights and the same tensors. Then it trains the way anyone
would write it in PyTorch (shuffle, uint8 -> float / 255, forward, cross-entropy, backward,
Adam step, running loss and accuracy) for one warm-up epoch and the manifest's epochs, on
the manifest's thread count, and prints images per second as JSON.

Run with Debian's python3-torch: /usr/bin/python3 bench/reference/reference_loop.py FOLDER
"""
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn


def keras_same_padding(size, kernel, stride):
    """TensorFlow's "same" padding of one dimension as (before, after), odd pixel after."""
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def model4a(size, classes=4, filters=(32, 64, 128), kernel=5, stride=2, pool=2, hidden=(128, 128), dropout=0.5):
    """Model 4A with the plugin's defaults, layer for layer as plugins/models/common (bachlab/plugins/layers.h) builds it."""
    layers, channels = [], 3
    for f in filters:
        before, after = keras_same_padding(size, kernel, stride)  # square: rows and columns alike
        if before + after:
            layers.append(nn.ZeroPad2d((before, after, before, after)))
        layers += [nn.Conv2d(channels, f, kernel, stride=stride), nn.ReLU()]
        channels, size = f, (size + stride - 1) // stride
        before, after = keras_same_padding(size, pool, pool)
        if before + after:
            layers.append(nn.ConstantPad2d((before, after, before, after), -math.inf))
        layers.append(nn.MaxPool2d(pool))
        size = (size + pool - 1) // pool
    layers.append(nn.Flatten())
    features = channels * size * size
    for i, units in enumerate(hidden):
        layers += [nn.Linear(features, units), nn.ReLU()]
        if i == len(hidden) - 1 and dropout > 0:
            layers.append(nn.Dropout(dropout))
        features = units
    layers.append(nn.Linear(features, classes))
    model = nn.Module()
    model.layers = nn.Sequential(*layers)
    model.forward = model.layers.forward
    return model


def fail(message):
    print(f"reference_loop.py: {message}", file=sys.stderr)
    sys.exit(1)


def main(folder):
    manifest = json.loads((folder / "manifest.json").read_text())
    if manifest["model"] != "model4a":
        fail(f"{folder / 'manifest.json'}: model is \"{manifest['model']}\"; this reference builds model4a only")
    n, size, batch = manifest["images"], manifest["size"], manifest["batch"]
    torch.set_num_threads(manifest["threads"])

    images = torch.from_numpy(np.fromfile(folder / "images.u8", dtype=np.uint8).reshape(n, 3, size, size))
    labels = torch.from_numpy(np.fromfile(folder / "labels.i64", dtype="<i8"))
    model = model4a(size)
    names = [name for name, _ in model.named_parameters()]
    expected = [p["name"] for p in manifest["parameters"]]
    if names != expected:
        fail(f"parameter names differ from the plugin's:\n  here:   {names}\n  plugin: {expected}")
    weights = np.fromfile(folder / "weights.f32", dtype="<f4")
    offset = 0
    with torch.no_grad():
        for p, spec in zip(model.parameters(), manifest["parameters"]):
            if list(p.shape) != spec["shape"]:
                fail(f"{spec['name']}: shape {list(p.shape)} here, {spec['shape']} in the plugin")
            p.copy_(torch.from_numpy(weights[offset:offset + p.numel()].reshape(p.shape)))
            offset += p.numel()
    if offset != weights.size:
        fail(f"{folder / 'weights.f32'}: {weights.size} floats, the model has {offset}")

    model.eval()
    with torch.no_grad():
        x = images[:batch].float().div_(255.0)
        loss = nn.functional.cross_entropy(model(x), labels[:batch]).item()
    if abs(loss - manifest["first_batch_loss"]) > 1e-4:
        fail(f"first-batch loss {loss:.6f} here, {manifest['first_batch_loss']:.6f} in bachlab: not the same network")
    model.train()

    optimizer = torch.optim.Adam(model.parameters(), lr=manifest["lr"])
    generator = torch.Generator().manual_seed(5)

    def epoch():
        order = torch.randperm(n, generator=generator)
        total_loss, correct = 0.0, 0
        for start in range(0, n, batch):
            index = order[start:start + batch]
            x = images.index_select(0, index).float().div_(255.0)
            y = labels.index_select(0, index)
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(index)
            correct += (logits.argmax(1) == y).sum().item()
        return total_loss / n

    epoch()  # warm-up, as on bachlab's side
    start = time.perf_counter()
    for _ in range(manifest["epochs"]):
        last_loss = epoch()
    seconds = time.perf_counter() - start
    print(json.dumps({"implementation": f"PyTorch {torch.__version__} (Python)",
                      "images_per_second": n * manifest["epochs"] / seconds,
                      "seconds": seconds,
                      "first_batch_loss_difference": abs(loss - manifest["first_batch_loss"]),
                      "last_epoch_loss": last_loss}))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        fail("usage: reference_loop.py FOLDER (written by build/<preset>/bench/reference_loop --out FOLDER)")
    main(Path(sys.argv[1]))
