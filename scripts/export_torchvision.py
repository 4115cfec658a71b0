#!/usr/bin/python3
"""Export torchvision ResNet50 / VGG16 weights for bachlab's resnet50, vgg16 and torchscript
model plugins.

Run with Debian's python (python3-torch, python3-torchvision):

  # ImageNet weights (needs internet once: torchvision downloads them to ~/.cache/torch)
  /usr/bin/python3 scripts/export_torchvision.py resnet50 --pretrained -o weights/resnet50_imagenet.pt
  /usr/bin/python3 scripts/export_torchvision.py vgg16 --pretrained -o weights/vgg16_imagenet.pt

  # seeded random weights (no internet needed; what the tests use)
  /usr/bin/python3 scripts/export_torchvision.py resnet50 --random-seed 7 -o /tmp/resnet50_seed7.pt

  # a frozen feature extractor for the torchscript plugin
  /usr/bin/python3 scripts/export_torchvision.py resnet50 --pretrained --torchscript weights/resnet50_features.ts

Outputs:
  -o/--output FILE     the state_dict as a plain dict {name: tensor} written by torch.save.
                       LibTorch's C++ torch::pickle_load reads this (it cannot read the
                       OrderedDict that model.state_dict() returns, hence the dict() copy).
                       Names are torchvision's own (conv1.weight, features.0.weight, ...).
  --notop              leave out the ImageNet classifier (fc.* / classifier.*), as Keras'
                       "notop" files do: 98 MB instead of 528 MB for VGG16. Enough for
                       head = "study"; head = "imagenet" needs the full file.
  --torchscript FILE   a TorchScript module (torch.jit.script) mapping an (N, 3, H, W) batch,
                       ImageNet-normalised, to pooled features (N, 2048) or (N, 25088).
  --check FILE         for tests: a dict with a fixed input in [0, 1] ("input"), torchvision's
                       logits on it after ImageNet normalisation ("logits") and the pooled
                       features ("features"), all computed in eval mode.

Exit status 0 on success; 2 with a message on bad arguments or a failed download.
"""

import argparse
import os
import sys
import tempfile

import torch
import torchvision

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MODELS = ("resnet50", "vgg16")
# The weight sets torchvision 0.14 offers; V1 is what Keras' ImageNet weights correspond to.
WEIGHT_TAGS = {"resnet50": ("IMAGENET1K_V1", "IMAGENET1K_V2"), "vgg16": ("IMAGENET1K_V1",)}


def build(name, pretrained, tag, seed):
    if pretrained:
        try:
            return getattr(torchvision.models, name)(weights=tag)
        except Exception as error:  # urllib raises many types; all mean "no download"
            sys.exit(
                f"export_torchvision.py: cannot download torchvision's {name} {tag} weights ({error}).\n"
                f"Run this on a machine with internet access (torchvision caches the download in "
                f"~/.cache/torch/hub), then copy the exported file here; or use --random-seed N for "
                f"untrained weights.")
    # torchvision initialises from the global generator, so the seed fixes every tensor.
    torch.manual_seed(seed)
    return getattr(torchvision.models, name)(weights=None)


class FeatureExtractor(torch.nn.Module):
    """torchvision's network up to and including its pooling, flattened: what the
    classifier would see. Kept as a module (not a function) so torch.jit.script keeps the
    weights inside the file."""

    def __init__(self, name, model):
        super().__init__()
        if name == "resnet50":
            model.fc = torch.nn.Identity()
            self.body = model
        else:
            self.body = torch.nn.Sequential(model.features, model.avgpool, torch.nn.Flatten(1))

    def forward(self, x):
        return self.body(x)


def atomic_save(save, path):
    """Writes through a temporary file in the same folder and renames it into place, so a
    killed export never leaves a truncated file that the C++ side would half-read."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=folder, prefix=".export-", suffix=".tmp")
    os.close(handle)
    try:
        save(temp)
        # mkstemp makes the file private; give it the mode a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def main(argv):
    parser = argparse.ArgumentParser(
        description="Export torchvision weights for bachlab's resnet50 / vgg16 / torchscript plugins.")
    parser.add_argument("model", choices=MODELS)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pretrained", action="store_true", help="ImageNet weights (downloads once)")
    source.add_argument("--random-seed", type=int, metavar="S", help="seeded random weights")
    parser.add_argument("--weights-tag", help="torchvision weight set (default IMAGENET1K_V1)")
    parser.add_argument("-o", "--output", help="state_dict file for the resnet50 / vgg16 plugins")
    parser.add_argument("--notop", action="store_true", help="leave out the ImageNet classifier")
    parser.add_argument("--torchscript", metavar="FILE", help="TorchScript feature extractor")
    parser.add_argument("--check", metavar="FILE", help="fixed input, logits and features (for tests)")
    parser.add_argument("--batch", type=int, default=2, help="--check: images in the input (default 2)")
    parser.add_argument("--size", type=int, default=224, help="--check: input side in pixels (default 224)")
    parser.add_argument("--input-seed", type=int, default=0, help="--check: seed of the input (default 0)")
    args = parser.parse_args(argv)

    if not (args.output or args.torchscript or args.check):
        parser.error("nothing to write: give -o/--output, --torchscript and/or --check")
    tag = args.weights_tag or "IMAGENET1K_V1"
    if args.weights_tag and not args.pretrained:
        parser.error("--weights-tag only applies with --pretrained")
    if tag not in WEIGHT_TAGS[args.model]:
        parser.error(f"--weights-tag for {args.model} must be one of {', '.join(WEIGHT_TAGS[args.model])} "
                     f"(was {tag})")
    if args.batch < 1 or args.size < 32:
        parser.error(f"--batch must be >= 1 and --size >= 32 (were {args.batch} and {args.size})")

    model = build(args.model, args.pretrained, tag, args.random_seed).eval()
    top = "fc." if args.model == "resnet50" else "classifier."

    if args.output:
        # A plain dict, not the OrderedDict state_dict() returns: see the module docstring.
        state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()
                 if not (args.notop and k.startswith(top))}
        atomic_save(lambda f: torch.save(state, f), args.output)
        print(f"wrote {args.output}: {len(state)} tensors of torchvision's {args.model} "
              f"({'ImageNet ' + tag if args.pretrained else 'random, seed ' + str(args.random_seed)}"
              f"{', without ' + top + '*' if args.notop else ''})")

    # Logits come from the intact model; the extractor then replaces ResNet50's fc in place.
    if args.check:
        generator = torch.Generator().manual_seed(args.input_seed)
        images = torch.rand(args.batch, 3, args.size, args.size, generator=generator)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        normalized = (images - mean) / std
        with torch.no_grad():
            logits = model(normalized)
    extractor = FeatureExtractor(args.model, model).eval()
    if args.check:
        with torch.no_grad():
            features = extractor(normalized)
        check = {"input": images, "logits": logits, "features": features}
        atomic_save(lambda f: torch.save(check, f), args.check)
        print(f"wrote {args.check}: input {tuple(images.shape)}, logits {tuple(logits.shape)}, "
              f"features {tuple(features.shape)}")

    if args.torchscript:
        scripted = torch.jit.script(extractor)
        atomic_save(lambda f: torch.jit.save(scripted, f), args.torchscript)
        print(f"wrote {args.torchscript}: TorchScript {args.model} feature extractor")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
