#!/usr/bin/env python3
"""PyTorch side of `cargo bench --bench compare -- --torch PYTHON`: one benchmark row per call.

The network is torchvision's DeepLabV3 on a torchvision ResNet, built exactly as
tools/parity/make_fixtures.py builds its parity models (ResNet._make_layer, BasicBlock /
Bottleneck, ASPP, DeepLabV3, IntermediateLayerGetter), at the width and depth of csranet's
presets with RAA off (torchvision has none):

  lite   ResNet-18 at half width (stem 32, planes 32/64/128/256), output stride 8
         (layer3+layer4 dilated), ASPP rates 12/24/36 with 128 channels, 5 classes
  paper  ResNet-50 (torchvision widths), output stride 8, ASPP 256 channels, 5 classes

Rows (each prints one JSON line with the keys csranet's own rows use):

  forward   eval mode under torch.inference_mode(): `iters` timed passes of a random
            [batch, 3, size, size] tensor after `warmup` passes; median ms.
  image     the network part of csra_segment_image on a size x size image: the same tiles
            (512 px, overlap 64, rounded up to the model's size multiple), batches of 2,
            ImageNet normalisation of the uint8 pixels, forward, softmax over classes, crop and
            argmax into a full-size class map. No instance post-processing (PyTorch has none):
            csranet's row includes it.
  train-sup one supervised step: train-mode forward of `batch` labelled tiles,
            cross-entropy with ignore index 255, backward, SGD (momentum 0.9, weight decay
            1e-4). csranet: Trainer::step with method `supervised`.
  train-swc one SWC step (csranet's `csra` method) on `batch` labelled + `batch` unlabelled
            tiles: eval-mode no-grad forward of the unlabelled weak views (softmax, max,
            argmax: pseudo-labels, confidence >= 0.95); ONE train-mode forward of the
            concatenated labelled weak, labelled strong, unlabelled strong-1 and strong-2
            views (4*batch tiles, batch norm sees them together, as csranet does); loss =
            CE(weak_l) + CE(strong_l) + 0.5 * (masked CE(s1) + masked CE(s2)) / |valid| +
            0.1 * contrastive term (1024 sampled pixels of the head's penultimate features of
            s1 and s2, L2-normalised classifier weights as negatives, T = 0.1, symmetrised);
            backward; SGD step. The strong views are precomputed perturbations of the inputs:
            csranet's row also computes its augmentations (colour jitter, blur, stain jitter,
            CutMix, random scale) inside the step, PyTorch's does not.

Peak RSS is VmHWM of this process (Linux), as for csranet's rows; base_rss_mib is VmRSS
after the model is built (torch's own libraries included). On a GPU, gpu_peak_mib is the
largest nvidia-smi figure of this process polled every 100 ms, as for csranet's rows.
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "parity"))


def status_mib(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


class GpuPeak:
    """Peak GPU memory of this process from nvidia-smi, polled every 100 ms (the CUDA
    context included), as csranet's rows measure theirs."""

    def __init__(self, dev):
        import threading
        self.peak = None
        self.stop = threading.Event()
        self.thread = None
        if dev.type == "cuda":
            self.thread = threading.Thread(target=self.poll, daemon=True)
            self.thread.start()

    def now(self):
        import subprocess
        try:
            out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                                  "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        for line in out.splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 2 and parts[0] == str(os.getpid()):
                return float(parts[1])
        return None

    def poll(self):
        while True:
            v = self.now()
            if v is not None:
                self.peak = v if self.peak is None else max(self.peak, v)
            if self.stop.wait(0.1):
                return

    def finish(self):
        if self.thread is None:
            return None
        self.stop.set()
        self.thread.join()
        return self.peak


def peak_rss_mib():
    return status_mib("VmHWM:")


def build(preset, num_classes=5):
    import torch.nn as nn
    try:
        import safetensors.torch  # noqa: F401  (make_fixtures imports it; unused here)
    except ImportError:
        import types
        stub = types.ModuleType("safetensors")
        stub.torch = types.ModuleType("safetensors.torch")
        stub.torch.save_file = None
        sys.modules["safetensors"] = stub
        sys.modules["safetensors.torch"] = stub.torch
    from make_fixtures import DilatedBasicBlock, SlimResNet, deeplab_head
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.models.resnet import Bottleneck
    from torchvision.models.segmentation.deeplabv3 import DeepLabV3

    if preset == "lite":
        resnet = SlimResNet(DilatedBasicBlock, [2, 2, 2, 2], stem=32, planes=(32, 64, 128, 256),
                            replace_stride_with_dilation=(False, True, True))
        enc, aspp = 256, 128
    elif preset == "paper":
        resnet = SlimResNet(Bottleneck, [3, 4, 6, 3], stem=64, planes=(64, 128, 256, 512),
                            replace_stride_with_dilation=(False, True, True))
        enc, aspp = 2048, 256
    else:
        raise SystemExit(f"unknown preset {preset}")
    backbone = IntermediateLayerGetter(resnet, return_layers={"layer4": "out"})
    head = deeplab_head(enc, [12, 24, 36], aspp, num_classes)
    model = DeepLabV3(backbone, head, aux_classifier=None)
    assert isinstance(model.classifier[3], nn.ReLU)
    return model


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def sync(dev):
    import torch
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, iters, warmup, dev):
    for _ in range(warmup):
        fn()
    sync(dev)
    ms = []
    for _ in range(max(1, iters)):
        t0 = time.perf_counter()
        fn()
        sync(dev)
        ms.append((time.perf_counter() - t0) * 1e3)
    return ms


def axis_tiles(length, t, overlap):
    """csranet's axis_tiles: tile starts and owned cores along one axis."""
    if length <= t:
        return [(0, length, 0, length)]
    step = t - overlap
    starts = []
    s = 0
    while s + t < length:
        starts.append(s)
        s += step
    starts.append(length - t)
    starts = sorted(set(starts))
    n = len(starts)
    out = []
    for i, s in enumerate(starts):
        e = s + t
        lo = 0 if i == 0 else (starts[i - 1] + t + s) // 2
        hi = length if i + 1 == n else (e + starts[i + 1]) // 2
        out.append((s, e, lo, hi))
    return out


def row_forward(a, model, dev, dtype):
    import torch
    model.eval()
    x = torch.randn(a.batch, 3, a.size, a.size, device=dev, dtype=dtype)
    with torch.inference_mode():
        ms = timed(lambda: model(x)["out"].float().sum().item(), a.iters, a.warmup, dev)
    med = median(ms)
    return {"kind": "forward", "size": a.size, "batch": a.batch, "iters": len(ms),
            "median_ms": med, "min_ms": min(ms), "ms_per_tile": med / a.batch,
            "tiles_per_s": a.batch * 1e3 / med}


def row_image(a, model, dev, dtype):
    import torch
    model.eval()
    size = a.image_size
    g = torch.Generator().manual_seed(7)
    img = torch.randint(0, 256, (size, size, 3), dtype=torch.uint8, generator=g)
    mean = torch.tensor([0.485, 0.456, 0.406], device=dev).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=dev).view(3, 1, 1)
    mult = 8
    t = (512 + mult - 1) // mult * mult
    xs = axis_tiles(size, t, 64)
    tiles = [(x, y) for y in axis_tiles(size, t, 64) for x in xs]

    def run():
        cls = torch.zeros(size, size, dtype=torch.uint8)
        for i in range(0, len(tiles), 2):
            batch = tiles[i:i + 2]
            tw = max(x[1] - x[0] for x, _ in batch)
            th = max(y[1] - y[0] for _, y in batch)
            pw, ph = (tw + mult - 1) // mult * mult, (th + mult - 1) // mult * mult
            xb = torch.zeros(len(batch), 3, ph, pw, device=dev)
            for k, (xt, yt) in enumerate(batch):
                crop = img[yt[0]:yt[1], xt[0]:xt[1]].to(dev).permute(2, 0, 1).float() / 255.0
                xb[k, :, :crop.shape[1], :crop.shape[2]] = (crop - mean) / std
            with torch.inference_mode():
                p = torch.softmax(model(xb.to(dtype))["out"].float(), 1)
            for k, (xt, yt) in enumerate(batch):
                am = p[k, :, :yt[1] - yt[0], :xt[1] - xt[0]].argmax(0).to(torch.uint8).cpu()
                cls[yt[2]:yt[3], xt[2]:xt[3]] = am[yt[2] - yt[0]:yt[3] - yt[0],
                                                   xt[2] - xt[0]:xt[3] - xt[0]]
        return cls

    with torch.inference_mode():  # warm-up: one small tile, as csranet's row does
        model(torch.zeros(1, 3, 256, 256, device=dev, dtype=dtype))
    ms = timed(run, 1, 0, dev)
    secs = ms[0] / 1e3
    return {"kind": "segment_image", "size": size, "tiles": len(tiles), "seconds": secs,
            "megapixels_per_s": size * size / 1e6 / secs}


def row_train(a, model, dev, swc):
    import torch
    import torch.nn.functional as F
    model.train()
    b, s = a.batch, a.size
    g = torch.Generator().manual_seed(3)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    xl = torch.randn(b, 3, s, s, generator=g).to(dev)
    yl = torch.randint(0, 5, (b, s, s), generator=g).to(dev)
    yl[:, :4] = 255
    xu = torch.randn(b, 3, s, s, generator=g).to(dev)
    views = [xl + 0.1 * torch.randn(b, 3, s, s, generator=g).to(dev),
             xu + 0.1 * torch.randn(b, 3, s, s, generator=g).to(dev),
             xu.flip(3) + 0.1 * torch.randn(b, 3, s, s, generator=g).to(dev)]
    feats = {}
    model.classifier[3].register_forward_hook(lambda m, i, o: feats.__setitem__("f", o))

    def step_sup():
        out = model(xl)["out"]
        loss = F.cross_entropy(out, yl, ignore_index=255)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    def step_swc():
        model.eval()
        with torch.no_grad():
            p = torch.softmax(model(xu)["out"], 1)
            conf, pl = p.max(1)
        mask = (conf >= 0.95).float()
        model.train()
        x = torch.cat([xl] + views)
        out = model(x)["out"]
        l_s = F.cross_entropy(out[:b], yl, ignore_index=255) + \
            F.cross_entropy(out[b:2 * b], yl, ignore_index=255)
        valid = float(pl.numel())
        l1 = (F.cross_entropy(out[2 * b:3 * b], pl, reduction="none") * mask).sum() / valid
        l2 = (F.cross_entropy(out[3 * b:], pl, reduction="none") * mask).sum() / valid
        l_u = 0.5 * (l1 + l2)
        f = feats["f"]
        d = f.shape[1]
        fz = f.permute(0, 2, 3, 1).reshape(4, b, -1, d)
        n = fz.shape[1] * fz.shape[2]
        idx = torch.randint(0, n, (1024,), device=dev)
        z1 = F.normalize(fz[2].reshape(n, d)[idx], dim=1)
        z2 = F.normalize(fz[3].reshape(n, d)[idx], dim=1)
        w = F.normalize(model.classifier[4].weight.reshape(-1, d), dim=1)

        def one(p, q):
            logits = torch.cat([(p * q).sum(1, keepdim=True), p @ w.t()], 1) / 0.1
            return -torch.log_softmax(logits, 1)[:, 0].mean()

        l_c = 0.5 * (one(z1, z2) + one(z2, z1))
        loss = l_s + l_u + 0.1 * l_c
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    ms = timed(step_swc if swc else step_sup, a.iters, a.warmup, dev)
    med = median(ms)
    return {"kind": "train-swc" if swc else "train-sup", "size": s, "batch": b,
            "iters": len(ms), "median_ms": med, "min_ms": min(ms),
            "seconds_per_step": med / 1e3}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--one", required=True, choices=["forward", "image", "train-sup", "train-swc"])
    ap.add_argument("--preset", default="lite", choices=["lite", "paper"])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--image-size", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"])
    a = ap.parse_args()

    import torch
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[a.dtype]
    if dtype != torch.float32 and a.one.startswith("train"):
        raise SystemExit("training rows are f32 only")
    gpu = GpuPeak(dev)
    model = build(a.preset).to(dev, dtype)
    base = status_mib("VmRSS:")
    if a.one == "forward":
        r = row_forward(a, model, dev, dtype)
    elif a.one == "image":
        r = row_image(a, model, dev, dtype)
    else:
        r = row_train(a, model, dev, a.one == "train-swc")
    r.update({"impl": "pytorch", "preset": a.preset, "raa": False, "device": a.device,
              "dtype": a.dtype, "threads": torch.get_num_threads(),
              "torch": torch.__version__, "base_rss_mib": base,
              "peak_rss_mib": peak_rss_mib(), "gpu_peak_mib": gpu.finish(),
              "torch_cuda_max_reserved_mib": (torch.cuda.max_memory_reserved(dev) / 2**20
                                              if dev.type == "cuda" else None)})
    print(json.dumps(r))


if __name__ == "__main__":
    main()
