#!/usr/bin/env python3
"""Convert a torchvision DeepLabv3 (ResNet-50/101) checkpoint to safetensors.

The output keeps torchvision's parameter names unchanged (backbone.*,
classifier.*, and aux_classifier.* unless --drop-aux), as float32 contiguous
tensors; num_batches_tracked (int64) entries are kept as well, since csranet's
loader accepts and ignores them (use --drop-num-batches-tracked to omit them).

Usage (from the repository root, with tools/requirements.txt installed):

  # 1. A state dict saved with torch.save(model.state_dict(), "ckpt.pth").
  #    Training checkpoints that wrap it ({"model": ...} / {"state_dict": ...})
  #    and DataParallel "module." prefixes are handled.
  .venv/bin/python tools/parity/convert_torchvision.py \\
      --checkpoint ckpt.pth --arch resnet50 --num-classes 21 -o model.safetensors

  # 2. torchvision's COCO/VOC pretrained weights (21 classes). They are taken
  #    from the torch hub cache (~/.cache/torch/hub/checkpoints, or
  #    $TORCH_HOME) and downloaded there if missing and online.
  .venv/bin/python tools/parity/convert_torchvision.py \\
      --pretrained --arch resnet101 -o deeplabv3_resnet101_coco.safetensors

--arch (resnet50 | resnet101) selects the torchvision model used to validate
the checkpoint: it is loaded into deeplabv3_<arch>(num_classes=...) with
strict=True, so a wrong architecture or a malformed file is an error, not a
silent mismatch.  --num-classes N: if the checkpoint has a different number of
classes (e.g. 21-class pretrained weights for a 5-class task), the final 1x1
convolutions classifier.4 (and aux_classifier.4) are re-initialised for N
classes with PyTorch's default init under --seed; everything else is kept.
Without --num-classes the checkpoint's own class count is used.
"""

import argparse
import json
import sys

import torch
import torch.nn as nn
import torchvision
from safetensors.torch import save_file
from torchvision.models import segmentation as seg

BUILDERS = {"resnet50": seg.deeplabv3_resnet50, "resnet101": seg.deeplabv3_resnet101}
WEIGHTS = {
    "resnet50": seg.DeepLabV3_ResNet50_Weights.DEFAULT,
    "resnet101": seg.DeepLabV3_ResNet101_Weights.DEFAULT,
}


def load_checkpoint(path):
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        sys.exit(f"{path}: not a state dict of tensors")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def reinit_head(state, prefix, num_classes, gen):
    """Replace <prefix>.weight/bias (a 1x1 Conv2d) by a fresh N-class conv."""
    w = state.get(prefix + ".weight")
    if w is None:
        return
    conv = nn.Conv2d(w.shape[1], num_classes, 1)
    with torch.random.fork_rng():
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        conv.reset_parameters()
    state[prefix + ".weight"] = conv.weight.detach()
    state[prefix + ".bias"] = conv.bias.detach()
    print(f"re-initialised {prefix} for {num_classes} classes (was {w.shape[0]})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="torchvision DeepLabV3 state dict (.pth)")
    src.add_argument("--pretrained", action="store_true",
                     help="use torchvision's COCO_WITH_VOC_LABELS_V1 weights (torch hub cache)")
    ap.add_argument("--arch", choices=sorted(BUILDERS), default="resnet50")
    ap.add_argument("--num-classes", type=int, default=None,
                    help="output classes; a different count re-initialises classifier.4 / aux_classifier.4")
    ap.add_argument("--seed", type=int, default=0, help="seed for re-initialised heads")
    ap.add_argument("--drop-aux", action="store_true", help="omit aux_classifier.* tensors")
    ap.add_argument("--drop-num-batches-tracked", action="store_true")
    ap.add_argument("-o", "--output", required=True, help="output .safetensors path")
    args = ap.parse_args()

    if args.pretrained:
        try:
            model = BUILDERS[args.arch](weights=WEIGHTS[args.arch], aux_loss=True)
        except OSError as e:  # urllib.error.URLError is an OSError
            sys.exit(f"could not load {WEIGHTS[args.arch]} (not in the torch hub cache "
                     f"{torch.hub.get_dir()}/checkpoints and download failed: {e})")
        state = model.state_dict()
        source = f"torchvision:{WEIGHTS[args.arch]}"
    else:
        state = load_checkpoint(args.checkpoint)
        source = args.checkpoint
    state = {k: v.detach().clone() for k, v in state.items()}

    if "classifier.4.weight" not in state:
        sys.exit("no classifier.4.weight: not a torchvision DeepLabV3 checkpoint")
    ckpt_classes = state["classifier.4.weight"].shape[0]
    num_classes = args.num_classes or ckpt_classes
    if num_classes != ckpt_classes:
        gen = torch.Generator().manual_seed(args.seed)
        reinit_head(state, "classifier.4", num_classes, gen)
        reinit_head(state, "aux_classifier.4", num_classes, gen)

    # Validate against torchvision's own model definition (strict).
    has_aux = any(k.startswith("aux_classifier.") for k in state)
    ref = BUILDERS[args.arch](weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=has_aux)
    missing, unexpected = ref.load_state_dict(state, strict=False)
    if missing or unexpected:
        sys.exit(f"checkpoint does not match torchvision deeplabv3_{args.arch} ({num_classes} classes): "
                 f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected "
                 f"(e.g. {unexpected[:3]}); wrong --arch?")

    out = {}
    for k, v in state.items():
        if args.drop_aux and k.startswith("aux_classifier."):
            continue
        if args.drop_num_batches_tracked and k.endswith("num_batches_tracked"):
            continue
        out[k] = (v.float() if v.is_floating_point() else v).contiguous()

    meta = {"format": "pt", "csranet": json.dumps({
        "arch": f"deeplabv3_{args.arch}", "num_classes": num_classes, "source": source,
        "torch": torch.__version__, "torchvision": torchvision.__version__}, sort_keys=True)}
    save_file(out, args.output, metadata=meta)
    n = sum(v.numel() for k, v in out.items() if v.is_floating_point())
    print(f"wrote {args.output}: {len(out)} tensors, {n} float32 values, {num_classes} classes")


if __name__ == "__main__":
    main()
