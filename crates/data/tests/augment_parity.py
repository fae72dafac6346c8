"""torchvision (v1 transforms on PIL images) side of `augment_parity.rs`.

    python augment_parity.py IMAGE.png OUT_DIR

For each case writes OUT_DIR/CASE.bin (raw little-endian float32, [N, C, H, W] with N = 1
except for five/ten crops) and OUT_DIR/meta.json ({case: shape}). Values are ToTensor's
[0, 1] floats, normalised with ImageNet's mean/std for the `eval_normalize` case.
"""
import json
import os
import sys

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image
from torchvision.transforms import InterpolationMode as I

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def main():
    src, out = sys.argv[1], sys.argv[2]
    img = Image.open(src).convert("RGB")
    tt = T.ToTensor()
    cases = {
        "resize_bilinear": T.Compose([T.Resize(256), tt]),
        "resize_bicubic": T.Compose([T.Resize(256, I.BICUBIC), tt]),
        "resize_nearest": T.Compose([T.Resize(256, I.NEAREST), tt]),
        "resize_exact": T.Compose([T.Resize((100, 150)), tt]),
        "resize_up": T.Compose([T.Resize((600, 800)), tt]),
        "center_crop": T.Compose([T.CenterCrop(224), tt]),
        "hflip": T.Compose([T.RandomHorizontalFlip(1.0), tt]),
        "vflip": T.Compose([T.RandomVerticalFlip(1.0), tt]),
        "eval_normalize": T.Compose(
            [T.Resize(256), T.CenterCrop(224), tt, T.Normalize(MEAN, STD)]
        ),
        "five_crop": T.Compose(
            [T.FiveCrop(224), T.Lambda(lambda cs: torch.stack([tt(c) for c in cs]))]
        ),
        "ten_crop": T.Compose(
            [
                T.Resize(256),
                T.TenCrop(224),
                T.Lambda(lambda cs: torch.stack([tt(c) for c in cs])),
            ]
        ),
    }
    meta = {}
    for name, t in cases.items():
        x = t(img)
        if x.dim() == 3:
            x = x.unsqueeze(0)
        x = x.contiguous().numpy().astype("<f4")
        x.tofile(os.path.join(out, name + ".bin"))
        meta[name] = list(x.shape)
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f)


if __name__ == "__main__":
    main()
