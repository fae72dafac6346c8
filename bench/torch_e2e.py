"""PyTorch side of `bench/suite.sh` workload E: `convnet train`'s default run, end to end.

The same as `convnet train` with its defaults (crates/cli/src/cmd/train.rs): small-cnn
(bench/torch_step.py's `SmallCnn`), Fashion-MNIST read from the same IDX files, pixels / 255
normalised with the set's mean 0.2860 and std 0.3530, 10 % of the training set held out for
validation (a seeded split: the same size, not the same images), Adam 1e-3 (eps 1e-8), batch 64
with the last partial batch kept, a fresh seeded shuffle per epoch, 4 epochs, learning rate x0.1 every
ceil(3/4 of the epochs) epochs (StepLR, per epoch), `--workers` data-loading workers each
building whole batches with 2 batches of prefetch (convnet's loader), `--threads` compute
threads. Validation after each epoch at batch 256 (accuracy = argmax, loss = mean cross
entropy), the test set evaluated with the weights of the best validation accuracy, as
`convnet train` does with best.ckpt.

Writes `history.csv` in convnet's format into `--out` (so one parser reads both runs), prints
one line per epoch and `test top-1 X%` like convnet, and a last JSON line.
"""
import argparse
import copy
import gzip
import json
import math
import os
import struct
import time

import torch
import torch.nn.functional as F
from torch.utils.data import BatchSampler, DataLoader, Dataset, SubsetRandomSampler

from torch_step import SmallCnn, peak_rss_mb

MEAN, STD = 0.2860, 0.3530
HEADER = "epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds,images_per_sec"


def read_idx(path):
    """An IDX file (gzip or not) as a uint8 tensor of its dimensions."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise SystemExit(f"{path}: not a uint8 IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(data[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)


def load(data, split):
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(os.path.join(data, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data, f"{prefix}-labels-idx1-ubyte.gz")).long()
    return images, labels


class Batches(Dataset):
    """Whole batches by index list: uint8 images -> normalised float [N, 1, 28, 28], as convnet's
    loader workers build them."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        x = self.images[idx].unsqueeze(1).float().div_(255).sub_(MEAN).div_(STD)
        return x, self.labels[idx]


def loader(ds, indices, batch, shuffle, workers, seed):
    if shuffle:
        g = torch.Generator().manual_seed(seed)
        sampler = BatchSampler(SubsetRandomSampler(indices, generator=g), batch, drop_last=False)
    else:
        sampler = BatchSampler(indices, batch, drop_last=False)
    extra = dict(prefetch_factor=2, persistent_workers=True) if workers > 0 else {}
    return DataLoader(ds, sampler=sampler, batch_size=None, num_workers=workers, **extra)


def evaluate(model, batches):
    """Mean cross entropy and accuracy over `batches`."""
    model.eval()
    loss, correct, n = 0.0, 0, 0
    with torch.no_grad():
        for x, y in batches:
            out = model(x)
            loss += F.cross_entropy(out, y, reduction="sum").item()
            correct += (out.argmax(1) == y).sum().item()
            n += len(y)
    return loss / n, correct / n


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                   help="folder of the Fashion-MNIST IDX files")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-gamma", type=float, default=0.1)
    p.add_argument("--val-split", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=0, help="compute threads [default: torch's]")
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="data-loading workers")
    p.add_argument("--per-class", type=int, help="keep at most N training images per class")
    p.add_argument("--out", default=".", help="folder for history.csv")
    a = p.parse_args()
    started = time.perf_counter()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    images, labels = load(a.data, "train")
    test_images, test_labels = load(a.data, "test")
    n = len(labels)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(a.seed)).tolist()
    n_val = round(n * a.val_split)
    train_idx, val_idx = perm[:n - n_val], perm[n - n_val:]
    if a.per_class:
        # A class-balanced subset of the (already shuffled) training part, as --per-class.
        kept, subset = {}, []
        for i in train_idx:
            c = int(labels[i])
            if kept.get(c, 0) < a.per_class:
                kept[c] = kept.get(c, 0) + 1
                subset.append(i)
        train_idx = subset
    ds, test_ds = Batches(images, labels), Batches(test_images, test_labels)
    val_batch = max(a.batch_size, 256)
    val_loader = loader(ds, val_idx, val_batch, False, a.workers, a.seed)
    test_loader = loader(test_ds, list(range(len(test_labels))), val_batch, False, a.workers, a.seed)

    train_loader = loader(ds, train_idx, a.batch_size, True, a.workers, a.seed)
    model = SmallCnn()
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, eps=1e-8)
    step = math.ceil(3 * a.epochs / 4) if a.epochs >= 2 else None
    sched = torch.optim.lr_scheduler.StepLR(opt, step, a.lr_gamma) if step else None
    print(f"training small-cnn (PyTorch {torch.__version__}) on {a.data}: {len(train_idx)} train, "
          f"{len(val_idx)} val images, {a.epochs} epochs, {torch.get_num_threads()} threads, "
          f"{a.workers} loader workers", flush=True)
    os.makedirs(a.out, exist_ok=True)
    rows, best, best_state = [], -1.0, None
    for epoch in range(a.epochs):
        lr = opt.param_groups[0]["lr"]
        t = time.perf_counter()
        model.train()
        loss_sum, correct, count = 0.0, 0, 0
        for x, y in train_loader:
            out = model(x)
            loss = F.cross_entropy(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
            count += len(y)
        seconds = time.perf_counter() - t
        if sched:
            sched.step()
        val_loss, val_acc = evaluate(model, val_loader)
        rows.append((epoch + 1, lr, loss_sum / count, correct / count, val_loss, val_acc, seconds,
                     count / seconds))
        print(f"epoch {epoch + 1:>3}/{a.epochs}  lr {lr:.2e}  train loss {loss_sum / count:.4f} "
              f"acc {100 * correct / count:.2f}%  val loss {val_loss:.4f} acc {100 * val_acc:.2f}%  "
              f"{seconds:.1f}s ({count / seconds:.0f} img/s)", flush=True)
        if val_acc > best:
            best, best_state = val_acc, copy.deepcopy(model.state_dict())
        with open(os.path.join(a.out, "history.csv"), "w") as f:
            f.write(HEADER + "\n")
            for r in rows:
                f.write("{},{},{:.6f},{:.6f},{:.6f},{:.6f},{:.3f},{:.1f}\n".format(*r))
    model.load_state_dict(best_state)
    _, test_acc = evaluate(model, test_loader)
    print(f"test top-1 {100 * test_acc:.2f}%")
    print(json.dumps({
        "impl": "pytorch " + torch.__version__,
        "test_acc": round(test_acc, 6),
        "best_val_acc": round(best, 6),
        "wall_s": round(time.perf_counter() - started, 1),
        "peak_rss_mb": peak_rss_mb(),
    }))


if __name__ == "__main__":
    main()
