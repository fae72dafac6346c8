"""Builds a model in PyTorch with random weights and writes what `tests/parity.rs` compares.

    python parity.py MODEL OUT_DIR

Writes OUT_DIR/weights.pth (torch.save of the state_dict), input.bin and logits.bin (raw
little-endian float32) and meta.json (input shape, classes). Batch norm running statistics are
randomised too, so that inference-mode normalisation is exercised.
"""
import json
import os
import sys

import torch
import torchvision.models as tvm

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "bench"))
from torch_step import MnistCnn, ResNet20, SmallCnn, WideResNet  # noqa: E402

# convnet name -> (constructor, input shape C,H,W, classes)
MODELS = {
    "mnist-cnn": (lambda: MnistCnn(classes=10), (1, 28, 28), 10),
    "small-cnn": (lambda: SmallCnn(classes=10), (1, 28, 28), 10),
    "resnet20": (lambda: ResNet20(classes=10), (3, 32, 32), 10),
    "wrn16_4": (lambda: WideResNet(16, 4, classes=10), (3, 32, 32), 10),
    "alexnet": (lambda: tvm.alexnet(), (3, 224, 224), 1000),
    "vgg11": (lambda: tvm.vgg11(), (3, 224, 224), 1000),
    "vgg11_bn": (lambda: tvm.vgg11_bn(), (3, 224, 224), 1000),
    "vgg13": (lambda: tvm.vgg13(), (3, 224, 224), 1000),
    "vgg13_bn": (lambda: tvm.vgg13_bn(), (3, 224, 224), 1000),
    "vgg16": (lambda: tvm.vgg16(), (3, 224, 224), 1000),
    "vgg16_bn": (lambda: tvm.vgg16_bn(), (3, 224, 224), 1000),
    "vgg19": (lambda: tvm.vgg19(), (3, 224, 224), 1000),
    "vgg19_bn": (lambda: tvm.vgg19_bn(), (3, 224, 224), 1000),
    "resnet18": (lambda: tvm.resnet18(), (3, 224, 224), 1000),
    "resnet34": (lambda: tvm.resnet34(), (3, 224, 224), 1000),
    "resnet50": (lambda: tvm.resnet50(), (3, 224, 224), 1000),
    "resnet101": (lambda: tvm.resnet101(), (3, 224, 224), 1000),
    "resnet152": (lambda: tvm.resnet152(), (3, 224, 224), 1000),
    "densenet121": (lambda: tvm.densenet121(), (3, 224, 224), 1000),
    "squeezenet1_0": (lambda: tvm.squeezenet1_0(), (3, 224, 224), 1000),
    "squeezenet1_1": (lambda: tvm.squeezenet1_1(), (3, 224, 224), 1000),
    "mobilenet_v2": (lambda: tvm.mobilenet_v2(), (3, 224, 224), 1000),
    "googlenet": (lambda: tvm.googlenet(aux_logits=True, init_weights=True), (3, 224, 224), 1000),
    "inception_v3": (lambda: tvm.inception_v3(aux_logits=True, init_weights=False), (3, 299, 299), 1000),
}


def main():
    name, out = sys.argv[1], sys.argv[2]
    ctor, shape, classes = MODELS[name]
    torch.manual_seed(0)
    model = ctor().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                # Mild, so that 50+ layers keep activations near unit scale.
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.8, 1.2)
                m.weight.uniform_(0.8, 1.2)
                m.bias.uniform_(-0.1, 0.1)
        # Damp residual branches (as zero_init_residual would) so that 100+ layers of
        # residual sums keep logits near unit scale, where 1e-4 is a tight bound.
        for m in model.modules():
            if isinstance(m, tvm.resnet.Bottleneck):
                m.bn3.weight.mul_(0.2)
            elif isinstance(m, tvm.resnet.BasicBlock):
                m.bn2.weight.mul_(0.2)
        x = torch.randn(2, *shape)
        y = model(x)
    os.makedirs(out, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(out, "weights.pth"))
    x.numpy().astype("<f4").tofile(os.path.join(out, "input.bin"))
    y.numpy().astype("<f4").tofile(os.path.join(out, "logits.bin"))
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump({"shape": list(shape), "classes": classes}, f)


if __name__ == "__main__":
    main()
