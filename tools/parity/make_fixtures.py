#!/usr/bin/env python3
"""Generate the golden PyTorch/torchvision parity fixtures for csranet.

Run from the repository root:

    .venv/bin/python tools/parity/make_fixtures.py

Everything is written into tests/fixtures/parity/ (see tools/parity/README.md).
The script is deterministic: fixed seeds, one CPU thread, deterministic
algorithms; rerunning it on the same torch version reproduces the files
byte for byte.

The two small models are assembled from torchvision's own building blocks
(ResNet._make_layer, Bottleneck, BasicBlock, ASPP, DeepLabV3,
IntermediateLayerGetter), so the parity is with torchvision itself and the
parameter names are exactly those of torchvision's deeplabv3_resnet50/101.
"""

import json
import os
import sys
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet, conv3x3
from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabV3

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT_DIR = os.path.join(REPO, "tests", "fixtures", "parity")

INPUT_SHAPE = (2, 3, 67, 85)  # H, W deliberately not multiples of 8 / 16
NUM_CLASSES = 5
IGNORE_INDEX = 255


class DilatedBasicBlock(BasicBlock):
    """torchvision's BasicBlock with dilation > 1 allowed.

    torchvision.models.resnet.BasicBlock raises NotImplementedError for
    dilation > 1, so a ResNet-18/34 cannot be built with
    replace_stride_with_dilation.  This minimal subclass keeps BasicBlock's
    structure, parameter names and forward() unchanged and only rebuilds the
    two 3x3 convolutions:
      conv1 = Conv2d(inplanes, planes, 3, stride=stride, padding=dilation, dilation=dilation)
      conv2 = Conv2d(planes,   planes, 3, stride=1,      padding=dilation, dilation=dilation)
    (both bias=False), i.e. BOTH convs of the block are dilated and the first
    conv carries the stride.  The dilation value each block receives is
    decided by torchvision's own ResNet._make_layer (see note there: the
    first block of a dilated layer gets the PREVIOUS dilation).
    """

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1,
                 base_width=64, dilation=1, norm_layer=None):
        super().__init__(inplanes, planes, stride, downsample, groups, base_width, 1, norm_layer)
        self.conv1 = conv3x3(inplanes, planes, stride, dilation=dilation)
        self.conv2 = conv3x3(planes, planes, dilation=dilation)


class SlimResNet(ResNet):
    """torchvision ResNet with a width multiplier.

    Reuses ResNet._make_layer (and therefore torchvision's stride/dilation
    logic and block construction) verbatim; only the channel counts differ.
    avgpool/fc are not created (IntermediateLayerGetter would drop them anyway).
    """

    def __init__(self, block, layers, stem=8, planes=(8, 16, 32, 64),
                 replace_stride_with_dilation=(False, False, False)):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = stem
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        rs = replace_stride_with_dilation
        self.layer1 = self._make_layer(block, planes[0], layers[0])
        self.layer2 = self._make_layer(block, planes[1], layers[1], stride=2, dilate=rs[0])
        self.layer3 = self._make_layer(block, planes[2], layers[2], stride=2, dilate=rs[1])
        self.layer4 = self._make_layer(block, planes[3], layers[3], stride=2, dilate=rs[2])
        # Same initialisation as torchvision's ResNet.__init__.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


def deeplab_head(in_channels, rates, aspp_out, num_classes):
    # Same layout as torchvision's DeepLabHead, with a configurable width
    # (DeepLabHead hard-codes 256).  Conv layers keep PyTorch's default init.
    return nn.Sequential(
        ASPP(in_channels, rates, out_channels=aspp_out),
        nn.Conv2d(aspp_out, aspp_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(aspp_out),
        nn.ReLU(),
        nn.Conv2d(aspp_out, num_classes, 1),
    )


def randomise_bn(model, gen):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)


CONFIGS = OrderedDict(
    r50_w0125_os8=dict(
        block=Bottleneck, layers=[3, 4, 6, 3], dilation=[False, True, True],
        layer4_out=64 * Bottleneck.expansion, rates=[12, 24, 36], seed=50,
    ),
    r18_w0125_os16=dict(
        block=DilatedBasicBlock, layers=[2, 2, 2, 2], dilation=[False, False, True],
        layer4_out=64 * BasicBlock.expansion, rates=[6, 12, 18], seed=18,
    ),
)
ASPP_OUT = 32


def build(cfg):
    torch.manual_seed(cfg["seed"])
    resnet = SlimResNet(cfg["block"], cfg["layers"], stem=8, planes=(8, 16, 32, 64),
                        replace_stride_with_dilation=cfg["dilation"])
    backbone = IntermediateLayerGetter(resnet, return_layers={"layer4": "out"})
    classifier = deeplab_head(cfg["layer4_out"], cfg["rates"], ASPP_OUT, NUM_CLASSES)
    model = DeepLabV3(backbone, classifier, aux_classifier=None)
    gen = torch.Generator().manual_seed(cfg["seed"] + 1000)
    randomise_bn(model, gen)
    return model.eval()


def f32_state(model):
    out = OrderedDict()
    for k, v in model.state_dict().items():
        v = v.detach().clone()
        if v.is_floating_point():
            v = v.float()
        out[k] = v.contiguous()
    return out


def save(tensors, name, meta=None):
    path = os.path.join(OUT_DIR, name)
    md = {"generator": "tools/parity/make_fixtures.py",
          "torch": torch.__version__, "torchvision": torchvision.__version__}
    md.update(meta or {})
    # safetensors writes the metadata map in hash order, so several keys
    # would make the header (and the file bytes) differ between runs; a
    # single key holding sorted JSON keeps the files byte-reproducible.
    md = {"fixture": json.dumps(md, sort_keys=True)}
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=md)
    print(f"wrote {os.path.relpath(path, REPO)}  ({os.path.getsize(path)} bytes)")


def make_labels():
    g = torch.Generator().manual_seed(255)
    n, _, h, w = INPUT_SHAPE
    labels = torch.randint(0, NUM_CLASSES, (n, h, w), generator=g, dtype=torch.int64)
    labels[torch.rand(n, h, w, generator=g) < 0.1] = IGNORE_INDEX  # scattered ignored pixels
    labels[0, 10:20, 30:50] = IGNORE_INDEX  # plus an ignored block
    labels[1, :, :5] = IGNORE_INDEX  # and an ignored left border on sample 1
    return labels


GRAD_PARAMS = [
    "backbone.conv1.weight",
    "backbone.layer1.0.conv1.weight",
    "backbone.layer4.1.conv2.weight",
    "classifier.0.convs.4.1.weight",
    "classifier.0.project.0.weight",
    "classifier.4.weight",
    "classifier.4.bias",
]


def grad_fixture(model, x):
    # A square crop (67x67, still not a multiple of 8): candle 0.11's conv2d backward
    # derives the transposed conv's output padding from the height alone, so inputs whose
    # height and width differ in parity at a strided conv get a wrong-shaped gradient.
    # Training crops in csranet are square; the fixture tests what training uses.
    x = x[:, :, :, : x.shape[2]].contiguous()
    labels = make_labels()[:, :, : x.shape[2]].contiguous()
    model.train()
    # Determinism: ASPP.project ends with Dropout(0.5) (classifier.0.project.3).
    # Keep it in eval mode (identity) so the train-mode forward is
    # deterministic; every BatchNorm is in train mode (batch statistics, and
    # running stats updated with momentum 0.1, unbiased variance).
    model.classifier[0].project[3].eval()
    assert isinstance(model.classifier[0].project[3], nn.Dropout)
    model.zero_grad(set_to_none=True)
    logits = model(x)["out"]
    loss = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)  # mean over valid pixels
    loss.backward()
    params = dict(model.named_parameters())
    bufs = dict(model.named_buffers())
    t = OrderedDict()
    t["input"] = x.detach().float()
    t["labels"] = labels
    t["labels_u8"] = labels.to(torch.uint8)
    t["loss"] = loss.detach().reshape(1).float()
    t["train_logits"] = logits.detach().float()
    for p in GRAD_PARAMS:
        t[f"grad.{p}"] = params[p].grad.detach().float().clone()
    t["after.backbone.bn1.running_mean"] = bufs["backbone.bn1.running_mean"].detach().clone()
    t["after.backbone.bn1.running_var"] = bufs["backbone.bn1.running_var"].detach().clone()
    return t


def torchvision_names():
    from torchvision.models.segmentation import deeplabv3_resnet50, deeplabv3_resnet101
    out = OrderedDict()
    for fn in (deeplabv3_resnet50, deeplabv3_resnet101):
        m = fn(weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
        out[fn.__name__] = [[k, list(v.shape), str(v.dtype).replace("torch.", "")]
                            for k, v in m.state_dict().items()]
        del m
    return out


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(OUT_DIR, exist_ok=True)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, python {sys.version.split()[0]}")

    x = torch.randn(INPUT_SHAPE, generator=torch.Generator().manual_seed(0))

    for name, cfg in CONFIGS.items():
        model = build(cfg)
        state = f32_state(model)  # snapshot before any forward
        with torch.no_grad():
            logits = model(x)["out"].float()
        assert tuple(logits.shape) == (INPUT_SHAPE[0], NUM_CLASSES) + INPUT_SHAPE[2:]
        print(f"{name}: logits mean {logits.mean():.4f} std {logits.std():.4f} "
              f"min {logits.min():.4f} max {logits.max():.4f}")

        weights = OrderedDict(state)
        if name == "r50_w0125_os8":
            # Extra tensors that are not part of our model: the loader must
            # accept and ignore them (as with real aux_loss=True checkpoints).
            g = torch.Generator().manual_seed(777)
            weights["aux_classifier.0.weight"] = torch.randn(8, 256, 3, 3, generator=g) * 0.01
            weights["aux_classifier.4.bias"] = torch.randn(NUM_CLASSES, generator=g) * 0.01
        meta = {"model": name, "output_stride": "8" if name.endswith("os8") else "16",
                "atrous_rates": json.dumps(cfg["rates"]), "num_classes": str(NUM_CLASSES)}
        save(weights, f"{name}.safetensors", meta)
        save({"input": x, "logits": logits}, f"{name}_io.safetensors", meta)

        if name == "r18_w0125_os16":
            model.load_state_dict(state)  # untouched weights (eval forward changes nothing anyway)
            save(grad_fixture(model, x), f"{name}_grad.safetensors", meta)

    names_path = os.path.join(OUT_DIR, "torchvision_names.json")
    names = torchvision_names()
    with open(names_path, "w") as f:  # one [name, shape, dtype] entry per line
        f.write("{\n")
        for i, (model_name, entries) in enumerate(names.items()):
            f.write(f"{json.dumps(model_name)}: [\n")
            f.write(",\n".join(json.dumps(e) for e in entries))
            f.write("\n]" + ("," if i + 1 < len(names) else "") + "\n")
        f.write("}\n")
    json.load(open(names_path))  # sanity: valid JSON
    print(f"wrote {os.path.relpath(names_path, REPO)}  ({os.path.getsize(names_path)} bytes)")


if __name__ == "__main__":
    main()
