"""Writes the PyTorch side of `tests/transfer.rs`.

    python transfer.py CASE OUT_DIR

Cases:
  resnet50-safetensors   torchvision resnet50 (random weights; timm's resnet50 uses the same
                         tensor names) saved with safetensors, plus a batch and its logits
  densenet-old-keys      densenet121 saved under the pre-0.4 torchvision key names
                         (`norm.1` for `norm1`), as densenet121-a639ec97.pth has them
  malicious              a torch.save'd .pth whose pickle calls os.system when unpickled
"""
import json
import os
import re
import sys

import torch
import torchvision.models as tvm


def batch_and_logits(model, out, shape):
    torch.manual_seed(1)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        y = model(x)
    x.numpy().astype("<f4").tofile(os.path.join(out, "input.bin"))
    y.numpy().astype("<f4").tofile(os.path.join(out, "logits.bin"))
    json.dump({"shape": list(shape), "classes": y.shape[1]}, open(os.path.join(out, "meta.json"), "w"))


def randomise_bn(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.8, 1.2)


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ("touch " + self.marker,))


def main():
    case, out = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    if case == "resnet50-safetensors":
        from safetensors.torch import save_file

        model = tvm.resnet50().eval()
        randomise_bn(model)
        sd = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(sd, os.path.join(out, "weights.safetensors"))
        batch_and_logits(model, out, (3, 224, 224))
    elif case == "densenet-old-keys":
        model = tvm.densenet121().eval()
        randomise_bn(model)
        old = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))((?:[12])\.(?:weight|bias|running_mean|running_var))$")
        sd = {}
        for k, v in model.state_dict().items():
            m = old.match(k)
            sd[m.group(1) + "." + m.group(2) if m else k] = v
        assert any(".norm.1." in k for k in sd)
        torch.save(sd, os.path.join(out, "weights.pth"))
        batch_and_logits(model, out, (3, 224, 224))
    elif case == "malicious":
        marker = os.path.join(out, "pwned")
        torch.save({"conv1.weight": torch.zeros(1), "evil": Evil(marker)}, os.path.join(out, "weights.pth"))
    else:
        raise SystemExit("unknown case " + case)


if __name__ == "__main__":
    main()
