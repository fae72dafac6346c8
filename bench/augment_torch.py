"""torchvision side of bench/augment.sh: decode + augment + normalise throughput of an
ImageNet-style training pipeline through a DataLoader.

    python augment_torch.py DATA_DIR WORKERS [PASSES] [BATCH]

Pipeline (torchvision v1 transforms on PIL images): RandomResizedCrop(224),
RandomHorizontalFlip(), ColorJitter(0.4, 0.4, 0.4), ToTensor(), Normalize(ImageNet).
One untimed warm-up pass (workers started, files cached), then PASSES timed passes with
persistent workers; prints one JSON line.
"""
import json
import sys
import time

import torch
import torchvision.transforms as T
from torchvision.datasets import ImageFolder


def main():
    root, workers = sys.argv[1], int(sys.argv[2])
    passes = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 64
    torch.manual_seed(0)
    tf = T.Compose(
        [
            T.RandomResizedCrop(224),
            T.RandomHorizontalFlip(),
            T.ColorJitter(0.4, 0.4, 0.4),
            T.ToTensor(),
            T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    ds = ImageFolder(root, transform=tf)
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        prefetch_factor=2 if workers > 0 else None,
    )
    n, checksum = 0, 0.0
    for epoch in range(passes + 1):
        if epoch == 1:
            n, t = 0, time.perf_counter()
        for x, _ in loader:
            n += x.shape[0]
            checksum += float(x[0, 0, 0, 0])
    secs = time.perf_counter() - t
    print(
        json.dumps(
            {
                "impl": "torchvision",
                "workers": workers,
                "images": n,
                "seconds": round(secs, 3),
                "images_per_sec": round(n / secs, 1),
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
