"""PyTorch side of `bench/run.sh`: the same networks and steps as `convnet bench`.

Prints one JSON line like convnet's, so the runner can compare the two.
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class MnistCnn(nn.Module):
    """Seed 003's CNN: conv16 5x5 p2, pool, conv32 5x5 p2, pool, linear 1568 -> 10."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 5, padding=2)
        self.out = nn.Linear(32 * 7 * 7, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.out(x.flatten(1))


class ConvBnRelu(nn.Module):
    """Conv (no bias) -> BN -> ReLU, named like convnet's `ConvBnRelu` so weights load by key."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class SmallCnn(nn.Module):
    """convnet's default: conv32-BN-ReLU-pool, conv64-BN-ReLU-pool, fc128, dropout 0.3, fc."""

    def __init__(self, classes=10):
        super().__init__()
        self.block1 = ConvBnRelu(1, 32)
        self.block2 = ConvBnRelu(32, 64)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, classes)

    def forward(self, x):
        x = F.max_pool2d(self.block1(x), 2)
        x = F.max_pool2d(self.block2(x), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(F.dropout(x, 0.3, self.training))


MODELS = {"mnist-cnn": (MnistCnn, (1, 28, 28)), "small-cnn": (SmallCnn, (1, 28, 28))}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="mnist-cnn")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--inference", action="store_true")
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cls, shape = MODELS[a.model]
    dev = torch.device(a.device)
    model = cls().to(dev)
    x = torch.randn(a.batch_size, *shape, device=dev)
    y = torch.randint(0, 10, (a.batch_size,), device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if a.inference:
        model.eval()
        with torch.no_grad():
            for i in range(a.warmup + a.steps):
                if i == a.warmup:
                    t = time.perf_counter()
                model(x)
            sync()
    else:
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for i in range(a.warmup + a.steps):
            if i == a.warmup:
                t = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            loss.item()
    sync()
    dt = time.perf_counter() - t
    print(json.dumps({
        "impl": "pytorch " + torch.__version__,
        "device": a.device,
        "model": a.model,
        "mode": "inference" if a.inference else "train",
        "batch": a.batch_size,
        "steps": a.steps,
        "threads": torch.get_num_threads(),
        "images_per_sec": round(a.steps * a.batch_size / dt, 1),
    }))


if __name__ == "__main__":
    main()
