"""The Python side of `bachlab bench --kind model`: what a user would time in plain PyTorch -
a torchvision model's forward pass (eval mode, no gradients) and one training step (train
mode, cross-entropy, backward, Adam) on a random batch - so the plugin's figures can be read
against it. Same input size, batch and thread count as the C++ side; median of the timed
repetitions after warm-up.

Usage: /usr/bin/python3 bench/plugins/torch_model_step.py [resnet50|vgg16] SIZE BATCH THREADS
(Debian's python3-torch and python3-torchvision; random weights: timing does not depend on
their values.)
"""
import statistics
import sys
import time

import torch
import torchvision


def timed(step, repetitions, warmup=2):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repetitions):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main():
    name, size, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(num_classes=4)
    x = torch.rand(batch, 3, size, size)
    y = torch.randint(0, 4, (batch,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def forward():
        with torch.no_grad():
            model(x)

    def train_step():
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    model.eval()
    forward_ms = timed(forward, 10)
    model.train()
    train_ms = timed(train_step, 5)
    print(f"pytorch {torch.__version__} {name} {size}px batch {batch}, {threads} threads: "
          f"forward {forward_ms:.1f} ms, train step (Adam) {train_ms:.1f} ms per batch")


if __name__ == "__main__":
    main()
