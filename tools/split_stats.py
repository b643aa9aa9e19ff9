#!/usr/bin/env python3
"""Class make-up of the labelled part of `split_by_source` (src/data/split.rs, mirrored here:
SplitMix64 shuffle of the source-image groups, then groups taken while the tile count gets
closer to fraction * tiles) for seeds 0..N-1, to choose a representative semi-supervised split.

    .venv/bin/python tools/split_stats.py ../shared/data/consep/train [FRACTION] [SEEDS]
"""
import os
import sys

import numpy as np
from PIL import Image

M = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.x = seed

    def next(self):
        self.x = (self.x + 0x9E3779B97F4A7C15) & M
        z = self.x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
        return z ^ (z >> 31)

    def below(self, n):
        zone = M - M % n
        while True:
            x = self.next()
            if x < zone:
                return x % n


def group_key(name):
    head, _, tail = name.rpartition("_")
    return head if head and tail.isdigit() else name


def labelled(names, fraction, seed):
    groups = {}
    for i, n in enumerate(names):
        groups.setdefault(group_key(n), []).append(i)
    order = [groups[k] for k in sorted(groups)]
    rng = SplitMix64(seed)
    for i in range(len(order) - 1, 0, -1):
        j = rng.below(i + 1)
        order[i], order[j] = order[j], order[i]
    target = fraction * len(names)
    lab = []
    for gi, g in enumerate(order):
        closer, now = len(lab) + len(g) - target, len(lab) - target
        last_left = gi + 1 == len(order) and len(order) > 1
        if gi > 0 and (last_left or abs(closer) > abs(now)):
            break
        lab += g
    return sorted(lab)


def main():
    d = sys.argv[1]
    fraction = eval(sys.argv[2]) if len(sys.argv) > 2 else 1 / 8  # e.g. 1/8
    seeds = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    names = sorted(os.path.splitext(f)[0] for f in os.listdir(os.path.join(d, "images")))
    types = np.stack([np.array(Image.open(os.path.join(d, "type", n + ".png"))) for n in names])
    whole = np.bincount(types.ravel(), minlength=5) / types.size
    print(f"all  {len(names)} tiles, nucleus share {1 - whole[0]:.3f}, classes 1-4 {np.round(whole[1:], 4)}")
    for seed in range(seeds):
        lab = labelled(names, fraction, seed)
        share = np.bincount(types[lab].ravel(), minlength=5) / types[lab].size
        sources = sorted({group_key(names[i]) for i in lab})
        ok = all(share[1:] > 0) and abs((1 - share[0]) / (1 - whole[0]) - 1) <= 0.15
        print(f"seed {seed:2d} {len(lab)} tiles {sources} nucleus share {1 - share[0]:.3f} "
              f"classes 1-4 {np.round(share[1:], 4)}{'  <- representative' if ok else ''}")


if __name__ == "__main__":
    main()
