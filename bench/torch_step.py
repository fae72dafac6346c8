"""PyTorch side of `bench/run.sh`, `bench/compare.sh` and `bench/suite.sh`: the same networks,
inputs, optimizers and steps as `convnet bench`, on synthetic data.

Prints one JSON line with the fields of convnet's (images/s, mean step time, peak RSS from
`/proc/self/status` VmHWM, settings), so the runners can set the two side by side.
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class MnistCnn(nn.Module):
    """Seed 003's CNN: conv16 5x5 p2, pool, conv32 5x5 p2, pool, linear 1568 -> 10."""

    def __init__(self, in_channels=1, classes=10, size=(28, 28)):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 5, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 5, padding=2)
        self.out = nn.Linear(32 * (size[0] // 4) * (size[1] // 4), classes)

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
    """convnet's default: conv32-BN-ReLU-pool, conv64-BN-ReLU-pool, fc128, dropout 0.3, fc
    (`crates/nn/src/models/small.rs`)."""

    def __init__(self, in_channels=1, classes=10, size=(28, 28)):
        super().__init__()
        self.block1 = ConvBnRelu(in_channels, 32)
        self.block2 = ConvBnRelu(32, 64)
        self.fc1 = nn.Linear(64 * (size[0] // 4) * (size[1] // 4), 128)
        self.fc2 = nn.Linear(128, classes)

    def forward(self, x):
        x = F.max_pool2d(self.block1(x), 2)
        x = F.max_pool2d(self.block2(x), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(F.dropout(x, 0.3, self.training))


class SmallVgg(nn.Module):
    """The fashion-small model: conv32 x2-pool, conv64 x2-pool (each conv-BN-ReLU), fc128,
    dropout 0.3, fc (`SmallVgg` in `crates/nn/src/models/small.rs`)."""

    def __init__(self, in_channels=1, classes=10, size=(28, 28)):
        super().__init__()
        self.stage1 = nn.Sequential(ConvBnRelu(in_channels, 32), ConvBnRelu(32, 32))
        self.stage2 = nn.Sequential(ConvBnRelu(32, 64), ConvBnRelu(64, 64))
        self.fc1 = nn.Linear(64 * (size[0] // 4) * (size[1] // 4), 128)
        self.fc2 = nn.Linear(128, classes)

    def forward(self, x):
        x = F.max_pool2d(self.stage1(x), 2)
        x = F.max_pool2d(self.stage2(x), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(F.dropout(x, 0.3, self.training))


class BasicBlockA(nn.Module):
    """A CIFAR ResNet basic block with the option-A shortcut: identity, or where the shape
    changes the input subsampled by the stride and zero-padded to the new channel count."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.stride, self.pad = stride, c_out - c_in

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        s = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
        if self.pad:
            s = F.pad(s, (0, 0, 0, 0, 0, self.pad))
        return F.relu(y + s)


class ResNet20(nn.Module):
    """CIFAR ResNet-20 (He et al. 2016, section 4.2; option A), as convnet's `resnet20`
    (`ResNet::cifar` in `crates/nn/src/models/resnet.rs`): the fashion-resnet recipe's model."""

    def __init__(self, in_channels=3, classes=10, size=(32, 32), n=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        c = 16
        for name, c_out, stride in [("layer1", 16, 1), ("layer2", 32, 2), ("layer3", 64, 2)]:
            blocks = [BasicBlockA(c if i == 0 else c_out, c_out, stride if i == 0 else 1)
                      for i in range(n)]
            setattr(self, name, nn.Sequential(*blocks))  # convnet's weight keys
            c = c_out
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class WideBlock(nn.Module):
    """A pre-activation wide basic block (Zagoruyko & Komodakis 2016, the authors' code):
    BN-ReLU-conv3x3-BN-ReLU-conv3x3, plus the input, or a 1x1 projection of the pre-activated
    input where the shape changes."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        changes = c_in != c_out or stride != 1
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False) if changes else None

    def forward(self, x):
        pre = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(pre))))
        return out + (self.shortcut(pre) if self.shortcut is not None else x)


class WideResNet(nn.Module):
    """WRN-depth-k, CIFAR layout, as convnet's `wrn16_4`, ... (`crates/nn/src/models/wrn.rs`)."""

    def __init__(self, depth, k, in_channels=3, classes=10):
        super().__init__()
        n, widths = (depth - 4) // 6, [16, 16 * k, 32 * k, 64 * k]
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        for g, stride in [(1, 1), (2, 2), (3, 2)]:
            blocks = [WideBlock(widths[g - 1] if i == 0 else widths[g], widths[g],
                                stride if i == 0 else 1) for i in range(n)]
            setattr(self, f"block{g}", nn.Sequential(*blocks))
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], classes)

    def forward(self, x):
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        x = F.relu(self.bn1(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def torchvision_model(name):
    """A torchvision network built like convnet's registry entry of the same name (the
    torchvision layout at any input size: global average pooling before the classifier)."""

    def build(in_channels, classes, size):
        import torchvision

        if in_channels != 3:
            raise SystemExit(f"{name}: torchvision networks take 3 channels")
        return getattr(torchvision.models, name)(weights=None, num_classes=classes)

    return build


# name -> (constructor(in_channels, classes, (h, w)), native [C, H, W], native classes), as in
# convnet's registry (`convnet models`).
MODELS = {
    "mnist-cnn": (MnistCnn, (1, 28, 28), 10),
    "small-cnn": (SmallCnn, (1, 28, 28), 10),
    "small-vgg": (SmallVgg, (1, 28, 28), 10),
    "resnet20": (ResNet20, (3, 32, 32), 10),
    "wrn16_4": (lambda c, classes, size: WideResNet(16, 4, c, classes), (3, 32, 32), 10),
    "resnet18": (torchvision_model("resnet18"), (3, 224, 224), 1000),
    "resnet50": (torchvision_model("resnet50"), (3, 224, 224), 1000),
    "vgg16": (torchvision_model("vgg16"), (3, 224, 224), 1000),
}


def peak_rss_mb():
    """VmHWM of this process in MiB, as `convnet bench` reads it (None off Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def optimizer(name, params, lr, momentum):
    """torch.optim's optimizer with the settings `convnet bench --optimizer` uses."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr or 0.01, momentum=0.9 if momentum is None else momentum,
                               dampening=0, nesterov=False)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr or 1e-3)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr or 1e-3, weight_decay=0)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr or 1e-3, momentum=momentum or 0)
    raise SystemExit(f"unknown optimizer {name}")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="mnist-cnn", choices=sorted(MODELS))
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--inference", action="store_true")
    p.add_argument("--in-channels", type=int)
    p.add_argument("--input-size", help="HxW [default: the model's]")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--optimizer", default="adam", choices=["sgd", "adam", "adamw", "rmsprop"])
    p.add_argument("--lr", type=float)
    p.add_argument("--momentum", type=float)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="f32", choices=["f32", "f16", "bf16"],
                   help="mixed precision: torch.autocast to float16 (with GradScaler) or bfloat16")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    build, (c, h, w), classes = MODELS[a.model]
    c = a.in_channels or c
    if a.input_size:
        h, w = (int(v) for v in a.input_size.split("x"))
    classes = a.num_classes or classes
    dev = torch.device(a.device)
    model = build(c, classes, (h, w)).to(dev)
    x = torch.randn(a.batch_size, c, h, w, device=dev)
    y = torch.randint(0, classes, (a.batch_size,), device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    half = {"f16": torch.float16, "bf16": torch.bfloat16}.get(a.precision)
    autocast = lambda: torch.autocast(dev.type, dtype=half, enabled=half is not None)
    if a.inference:
        model.eval()
        with torch.no_grad():
            for i in range(a.warmup + a.steps):
                if i == a.warmup:
                    sync()
                    t = time.perf_counter()
                with autocast():
                    model(x)
    else:
        model.train()
        opt = optimizer(a.optimizer, model.parameters(), a.lr, a.momentum)
        scaler = torch.amp.GradScaler(dev.type, enabled=a.precision == "f16")
        for i in range(a.warmup + a.steps):
            if i == a.warmup:
                sync()
                t = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            with autocast():
                loss = F.cross_entropy(model(x), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            loss.item()
    sync()
    dt = time.perf_counter() - t
    print(json.dumps({
        "impl": "pytorch " + torch.__version__,
        "model": a.model,
        "mode": "inference" if a.inference else "train",
        "optimizer": None if a.inference else a.optimizer,
        "device": a.device,
        "precision": a.precision,
        "input": [c, h, w],
        "classes": classes,
        "batch": a.batch_size,
        "steps": a.steps,
        "warmup": a.warmup,
        "threads": torch.get_num_threads(),
        "step_ms": round(1e3 * dt / a.steps, 1),
        "images_per_sec": round(a.steps * a.batch_size / dt, 2),
        "peak_rss_mb": peak_rss_mb(),
    }))


if __name__ == "__main__":
    main()
