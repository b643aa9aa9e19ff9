#!/usr/bin/env python3
"""Write the reference-value fixture for csranet's metric and dataset tests.

Inputs: the three MIT-licensed tiles in tests/fixtures/tiles (see ATTRIBUTION.md there).
Outputs (all under tests/fixtures/metrics/):
  * pairN_pred_inst.png (uint16) / pairN_pred_type.png (uint8): synthetic predictions derived
    deterministically from the ground truth (eroded, dilated, shifted, merged, split, dropped
    and false-positive instances, class flips, mixed-class instances, semantic noise);
  * pairN_gt_*.png where a pair needs its own ground truth (an empty tile, an ignore region);
  * reference.json: every metric, per pair and pooled, computed here;
  * pannuke_fold/ and pannuke_official/: two tiny synthetic PanNuke folds (flat and official
    directory layout) and pannuke_expected.json describing their conversion.

Dependencies: numpy, scipy, Pillow (pip install numpy scipy pillow).

The metric formulas below are written from their definitions (PanNuke's evaluation: PQ with
unique matching at IoU > 0.5, bPQ/mPQ per image with NaN for classes absent from the ground
truth, nanmean per tissue then over tissues; HoVer-Net's evaluation: AJI, Dice, detection F1 with
optimal centroid pairing within 12 px, type-aware F1). They intentionally repeat the numerical
conventions of those evaluations (for example SQ = sum(IoU) / (TP + 1e-6) and the 1e-6 in the
AJI pairing IoU) so that values agree to 1e-6 with what the reference scripts report.
"""

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

ROOT = Path(__file__).resolve().parents[2]
TILES = ROOT / "tests" / "fixtures" / "tiles"
OUT = ROOT / "tests" / "fixtures" / "metrics"

NUM_CLASSES = 6  # background + the five nucleus classes used by the fixture tiles
CLASS_NAMES = ["background", "class_1", "class_2", "class_3", "class_4", "class_5"]
IGNORE = 255
RADIUS = 12.0
MATCH_IOU = 0.5


# --------------------------------------------------------------------------------------------
# I/O helpers


def read_png(path):
    return np.array(Image.open(path))


def write_u16(path, arr):
    arr = np.asarray(arr)
    assert arr.min() >= 0 and arr.max() < 65536
    Image.fromarray(arr.astype(np.uint16)).save(path, optimize=True)


def write_u8(path, arr):
    Image.fromarray(np.asarray(arr).astype(np.uint8), mode="L").save(path, optimize=True)


def nan_to_none(x):
    """JSON has no NaN: write null, as the Rust summary does."""
    if isinstance(x, dict):
        return {k: nan_to_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [nan_to_none(v) for v in x]
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return None if math.isnan(x) else x
    if isinstance(x, np.integer):
        return int(x)
    return x


def nanmean(values):
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else float("nan")


def ratio(num, den):
    return float(num) / float(den) if den != 0 else float("nan")


# --------------------------------------------------------------------------------------------
# Instance helpers


def instance_ids(inst):
    ids = np.unique(inst)
    return [int(i) for i in ids if i != 0]


def classes_by_majority(inst, class_map):
    """Class of each instance = most frequent non-background, non-ignore class among its pixels
    (smallest class id on ties); 0 when the instance covers only background/ignore pixels."""
    out = {}
    for i in instance_ids(inst):
        vals = class_map[inst == i]
        vals = vals[(vals != 0) & (vals != IGNORE)]
        if vals.size == 0:
            out[i] = 0
            continue
        counts = np.bincount(vals, minlength=256)
        out[i] = int(np.argmax(counts))  # argmax takes the first (smallest id) on ties
    return out


def overlaps(gt, pred):
    """Areas of every instance and the intersection of every overlapping (gt, pred) pair."""
    gt_area = {i: int((gt == i).sum()) for i in instance_ids(gt)}
    pred_area = {i: int((pred == i).sum()) for i in instance_ids(pred)}
    both = (gt > 0) & (pred > 0)
    pairs, counts = np.unique(
        np.stack([gt[both].astype(np.int64), pred[both].astype(np.int64)]), axis=1, return_counts=True
    )
    inter = {(int(t), int(p)): int(c) for (t, p), c in zip(pairs.T, counts)}
    return gt_area, pred_area, inter


def pq_counts(gt_area, pred_area, inter, gt_keep=None, pred_keep=None):
    """Unique matching at IoU > 0.5 (a pair above 0.5 is necessarily unique)."""
    gts = [t for t in sorted(gt_area) if gt_keep is None or t in gt_keep]
    preds = [p for p in sorted(pred_area) if pred_keep is None or p in pred_keep]
    gset, pset = set(gts), set(preds)
    ious = []
    for (t, p), n in sorted(inter.items()):
        if t in gset and p in pset:
            iou = n / (gt_area[t] + pred_area[p] - n)
            if iou > MATCH_IOU:
                ious.append(iou)
    tp = len(ious)
    fp = len(preds) - tp
    fn = len(gts) - tp
    if tp + fp + fn == 0:
        return dict(tp=0, fp=0, fn=0, dq=float("nan"), sq=float("nan"), pq=float("nan"))
    dq = tp / (tp + 0.5 * fp + 0.5 * fn)
    sq = float(np.sum(ious)) / (tp + 1.0e-6)
    return dict(tp=tp, fp=fp, fn=fn, dq=dq, sq=sq, pq=dq * sq)


def aji(gt_area, pred_area, inter):
    """Aggregated Jaccard Index: every GT instance is paired with the prediction of highest
    IoU (a prediction may serve several GT instances); unpaired instances of either side add
    their area to the union."""
    if not gt_area and not pred_area:
        return float("nan")
    total_inter = 0
    total_union = 0
    used = set()
    for t in sorted(gt_area):
        best, best_iou = None, 0.0
        for p in sorted(pred_area):
            n = inter.get((t, p), 0)
            if n == 0:
                continue
            union = gt_area[t] + pred_area[p] - n
            iou = n / (union + 1.0e-6)
            if iou > best_iou:
                best, best_iou = p, iou
        if best is None:
            total_union += gt_area[t]
        else:
            n = inter[(t, best)]
            total_inter += n
            total_union += gt_area[t] + pred_area[best] - n
            used.add(best)
    for p in sorted(pred_area):
        if p not in used:
            total_union += pred_area[p]
    return total_inter / total_union


def dice(gt, pred):
    t = gt > 0
    p = pred > 0
    den = int(t.sum()) + int(p.sum())
    return ratio(2 * int((t & p).sum()), den)


def centroids(inst):
    out = []
    ys, xs = np.indices(inst.shape)
    for i in instance_ids(inst):
        m = inst == i
        out.append((i, float(xs[m].mean()), float(ys[m].mean())))
    return out


def pair_points(a, b, radius):
    """Minimum-total-distance assignment of min(len(a), len(b)) pairs, then pairs farther apart
    than `radius` are dropped."""
    if len(a) == 0 or len(b) == 0:
        return [], list(range(len(a))), list(range(len(b)))
    pa = np.array(a, dtype=np.float64)
    pb = np.array(b, dtype=np.float64)
    d = np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1))
    rows, cols = linear_sum_assignment(d)
    pairs = [(int(r), int(c)) for r, c in zip(rows, cols) if d[r, c] <= radius]
    ua = sorted(set(range(len(a))) - {r for r, _ in pairs})
    ub = sorted(set(range(len(b))) - {c for _, c in pairs})
    return pairs, ua, ub


# --------------------------------------------------------------------------------------------
# Per-tile evaluation


def evaluate_tile(gt, gt_cls, pred, pred_cls):
    gt_area, pred_area, inter = overlaps(gt, pred)
    res = {}
    binary = pq_counts(gt_area, pred_area, inter)
    res.update({k: binary[k] for k in ("tp", "fp", "fn", "dq", "sq", "pq")})
    res["bpq"] = binary["pq"] if gt_area else float("nan")
    class_pq = []
    for c in range(1, NUM_CLASSES):
        gk = {t for t in gt_area if gt_cls.get(t, 0) == c}
        pk = {p for p in pred_area if pred_cls.get(p, 0) == c}
        if not gk:
            class_pq.append(float("nan"))  # class absent from the ground truth: skipped
        else:
            class_pq.append(pq_counts(gt_area, pred_area, inter, gk, pk)["pq"])
    res["class_pq"] = class_pq
    res["mpq"] = nanmean(class_pq)
    res["aji"] = aji(gt_area, pred_area, inter)
    res["dice"] = dice(gt, pred)

    gc = centroids(gt)
    pc = centroids(pred)
    pairs, ug, up = pair_points([(x, y) for _, x, y in gc], [(x, y) for _, x, y in pc], RADIUS)
    paired = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)  # [gt class, pred class]
    for r, c in pairs:
        paired[gt_cls.get(gc[r][0], 0), pred_cls.get(pc[c][0], 0)] += 1
    unpaired_gt = np.zeros(NUM_CLASSES, dtype=np.int64)
    for r in ug:
        unpaired_gt[gt_cls.get(gc[r][0], 0)] += 1
    unpaired_pred = np.zeros(NUM_CLASSES, dtype=np.int64)
    for c in up:
        unpaired_pred[pred_cls.get(pc[c][0], 0)] += 1
    res["det_paired"] = paired.tolist()
    res["det_unpaired_gt"] = unpaired_gt.tolist()
    res["det_unpaired_pred"] = unpaired_pred.tolist()
    return res


def detection_scores(paired, unpaired_gt, unpaired_pred):
    """Detection F1 over all pooled pairs, type accuracy over matched pairs, and per-class
    type-aware F1: 2*TP_c / (2*TP_c + 2*(FP_c + FN_c among matched pairs) + unmatched
    predictions of class c + unmatched GT of class c)."""
    tp_d = int(paired.sum())
    fp_d = int(unpaired_pred.sum())
    fn_d = int(unpaired_gt.sum())
    f1_det = ratio(2 * tp_d, 2 * tp_d + fp_d + fn_d)
    acc_type = ratio(int(np.trace(paired)), tp_d)
    per_class = []
    for c in range(1, NUM_CLASSES):
        tp = int(paired[c, c])
        fp_t = int(paired[:, c].sum()) - tp  # matched, predicted c, truly another class
        fn_t = int(paired[c, :].sum()) - tp  # matched, truly c, predicted another class
        per_class.append(ratio(2 * tp, 2 * tp + 2 * fp_t + 2 * fn_t + int(unpaired_pred[c]) + int(unpaired_gt[c])))
    return f1_det, acc_type, per_class


def pixel_scores(confusion):
    """confusion[gt, pred] pooled over all tiles; pixels whose GT is IGNORE were skipped."""
    out = []
    for c in range(1, NUM_CLASSES):
        tp = int(confusion[c, c])
        fp = int(confusion[:, c].sum()) - tp
        fn = int(confusion[c, :].sum()) - tp
        out.append(
            dict(
                precision=ratio(tp, tp + fp),
                recall=ratio(tp, tp + fn),
                f1=ratio(2 * tp, 2 * tp + fp + fn),
                iou=ratio(tp, tp + fp + fn),
            )
        )
    return out


def tissue_mean(values, tissues):
    """nanmean per tissue, then nanmean over tissues; plain nanmean over tiles when no tile has
    a tissue (tiles without a tissue form one group of their own otherwise)."""
    if all(t is None for t in tissues):
        return nanmean(values)
    groups = {}
    for v, t in zip(values, tissues):
        groups.setdefault(-1 if t is None else t, []).append(v)
    return nanmean([nanmean(groups[k]) for k in sorted(groups)])


def summarise(tiles, confusion, use_tissue):
    tissues = [t["tissue"] if use_tissue else None for t in tiles]
    res = [t["expected"] for t in tiles]
    pix = pixel_scores(confusion)
    paired = sum(np.array(r["det_paired"]) for r in res)
    ug = sum(np.array(r["det_unpaired_gt"]) for r in res)
    up = sum(np.array(r["det_unpaired_pred"]) for r in res)
    f1_det, acc_type, f1_det_c = detection_scores(paired, ug, up)
    per_class = {}
    for c in range(1, NUM_CLASSES):
        per_class[CLASS_NAMES[c]] = dict(
            precision=pix[c - 1]["precision"],
            recall=pix[c - 1]["recall"],
            f1=pix[c - 1]["f1"],
            iou=pix[c - 1]["iou"],
            pq=nanmean([r["class_pq"][c - 1] for r in res]),
            f1_det=f1_det_c[c - 1],
        )
    return dict(
        pixel=dict(
            precision=nanmean([p["precision"] for p in pix]),
            recall=nanmean([p["recall"] for p in pix]),
            f1=nanmean([p["f1"] for p in pix]),
            miou=nanmean([p["iou"] for p in pix]),
        ),
        instance=dict(
            bpq=tissue_mean([r["bpq"] for r in res], tissues),
            mpq=tissue_mean([r["mpq"] for r in res], tissues),
            aji=nanmean([r["aji"] for r in res]),
            dice=nanmean([r["dice"] for r in res]),
            f1_det=f1_det,
            acc_type=acc_type,
            pq=nanmean([r["pq"] for r in res]),
            dq=nanmean([r["dq"] for r in res]),
            sq=nanmean([r["sq"] for r in res]),
        ),
        per_class=per_class,
        tiles=len(tiles),
    )


# --------------------------------------------------------------------------------------------
# Synthetic predictions


def shift(mask, dy, dx):
    out = np.zeros_like(mask)
    h, w = mask.shape
    ys = slice(max(dy, 0), h + min(dy, 0))
    yd = slice(max(-dy, 0), h + min(-dy, 0))
    xs = slice(max(dx, 0), w + min(dx, 0))
    xd = slice(max(-dx, 0), w + min(-dx, 0))
    out[ys, xs] = mask[yd, xd]
    return out


def disc(shape, cy, cx, r):
    ys, xs = np.indices(shape)
    return (ys - cy) ** 2 + (xs - cx) ** 2 <= r * r


def make_prediction(gt, gt_cls, seed, weights, flip_p, n_fp):
    """Perturb every GT instance by one randomly chosen operation."""
    rng = np.random.default_rng(seed)
    ops = ["keep", "erode", "dilate", "shift", "drop", "split", "merge"]
    p = np.array([weights.get(o, 0.0) for o in ops], dtype=np.float64)
    p /= p.sum()
    pred = np.zeros(gt.shape, dtype=np.int64)
    cls = {}
    ids = instance_ids(gt)
    # non-contiguous, shuffled prediction ids
    free_ids = list(rng.permutation(np.arange(1, 4000))[: 4 * len(ids) + n_fp + 8] * 7 + 3)
    cents = {i: c for i, c in ((i, ndimage.center_of_mass(gt == i)) for i in ids)}
    merged_into = {}
    for i in ids:
        op = ops[rng.choice(len(ops), p=p)]
        m = gt == i
        c = gt_cls[i]
        if rng.random() < flip_p:
            c = int(rng.choice([k for k in range(1, NUM_CLASSES) if k != c]))
        if op == "drop":
            continue
        if op == "erode":
            e = ndimage.binary_erosion(m, iterations=int(rng.integers(1, 3)))
            m = e if e.sum() > 0 else m
        elif op == "dilate":
            m = ndimage.binary_dilation(m, iterations=int(rng.integers(1, 3)))
        elif op == "shift":
            m = shift(m, int(rng.integers(-4, 5)), int(rng.integers(-4, 5)))
        if op == "split" and m.sum() >= 8:
            cy, cx = cents[i]
            ys, xs = np.indices(m.shape)
            a = m & (xs < cx)
            b = m & ~(xs < cx)
            for part in (a, b):
                if part.sum():
                    pid = free_ids.pop()
                    pred[part & (pred == 0)] = pid
                    cls[pid] = c
            continue
        if op == "merge":
            # join the nearest already-painted GT neighbour (within 25 px) with a dilated bridge
            cy, cx = cents[i]
            best = None
            for j, pid in merged_into.items():
                jy, jx = cents[j]
                d = math.hypot(jy - cy, jx - cx)
                if d < 25 and (best is None or d < best[0]):
                    best = (d, pid)
            if best is not None:
                pid = best[1]
                m = ndimage.binary_dilation(m, iterations=2)
                pred[m & ((pred == 0) | (pred == pid))] = pid
                merged_into[i] = pid
                continue
        pid = free_ids.pop()
        pred[m & (pred == 0)] = pid
        cls[pid] = c
        merged_into[i] = pid
    # false positives in the background
    h, w = gt.shape
    for _ in range(n_fp):
        for _attempt in range(50):
            cy, cx, r = int(rng.integers(8, h - 8)), int(rng.integers(8, w - 8)), int(rng.integers(3, 7))
            d = disc(gt.shape, cy, cx, r)
            if not (d & ((gt > 0) | (pred > 0))).any():
                pid = free_ids.pop()
                pred[d] = pid
                cls[pid] = int(rng.integers(1, NUM_CLASSES))
                break
    # drop ids that were completely overwritten
    present = set(instance_ids(pred))
    cls = {k: v for k, v in cls.items() if k in present}
    # class map: paint instances, then make a few instances mixed (majority must still win),
    # punch class-0 holes in one, and sprinkle semantic noise outside instances
    ptype = np.zeros(gt.shape, dtype=np.int64)
    for pid, c in cls.items():
        ptype[pred == pid] = c
    big = sorted(present, key=lambda k: -(pred == k).sum())[:3]
    for k, pid in enumerate(big):
        ys, xs = np.nonzero(pred == pid)
        n = len(ys)
        other = 1 + (cls[pid] % (NUM_CLASSES - 1))
        if k < 2:
            sel = rng.permutation(n)[: n * 2 // 5]  # 40% another class: majority unchanged
            ptype[ys[sel], xs[sel]] = other
        else:
            sel = rng.permutation(n)[: n // 3]
            ptype[ys[sel], xs[sel]] = 0
    noise = (rng.random(gt.shape) < 0.004) & (pred == 0)
    ptype[noise] = rng.integers(1, NUM_CLASSES, size=int(noise.sum()))
    return pred, ptype


# --------------------------------------------------------------------------------------------
# PanNuke synthetic folds


PANNUKE_CHANNELS = ["neoplastic", "inflammatory", "connective", "dead", "epithelial", "background"]


def write_npy(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, arr, allow_pickle=False)


def make_pannuke(rng, n, h, w, images_dtype):
    """n tiles of h x w: instances spread over the five class channels with original ids that
    repeat across channels, one pixel overlap between two channels (the later channel wins)."""
    images = rng.integers(0, 256, size=(n, h, w, 3)).astype(images_dtype)
    masks = np.zeros((n, h, w, 6), dtype=np.float64)
    expected = []
    tissues = ["Breast", "Colon", "Kidney", "HeadNeck"]
    types = []
    for i in range(n):
        inst_rows = []  # (channel, original id, pixel list) in painting order
        occupied = np.zeros((h, w), dtype=bool)
        if i == n - 1:
            pass  # last tile: no nuclei at all
        else:
            for k in range(3 + i):
                ch = int(rng.integers(0, 5))
                y0, x0 = int(rng.integers(0, h - 3)), int(rng.integers(0, w - 3))
                hh, ww = int(rng.integers(1, 4)), int(rng.integers(1, 4))
                box = np.zeros((h, w), dtype=bool)
                box[y0:y0 + hh, x0:x0 + ww] = True
                box &= ~occupied
                if not box.any():
                    continue
                occupied |= box
                oid = 1 + (k % 2) * 5 + k  # original ids are per channel and may repeat
                while (masks[i, :, :, ch] == oid).any():
                    oid += 1
                masks[i, :, :, ch][box] = oid
        # one overlap: a pixel of channel 4 on top of an existing instance of channel 0/1
        if i == 0:
            fg = np.argwhere(masks[i, :, :, :2].max(-1) > 0)
            y, x = fg[0]
            masks[i, y, x, 4] = 99
        masks[i, :, :, 5] = (masks[i, :, :, :5].max(-1) == 0).astype(np.float64)
        types.append(tissues[i % len(tissues)])
        # expected conversion: channels in order, ids ascending, later channel overwrites
        inst = np.zeros((h, w), dtype=np.int64)
        inst_cls = {}
        nid = 0
        for ch in range(5):
            for oid in np.unique(masks[i, :, :, ch]):
                if oid == 0:
                    continue
                nid += 1
                inst[masks[i, :, :, ch] == oid] = nid
                inst_cls[nid] = ch + 1
        inst_cls = {k: v for k, v in inst_cls.items() if (inst == k).any()}
        cmap = np.zeros((h, w), dtype=np.int64)
        for k, v in inst_cls.items():
            cmap[inst == k] = v
        expected.append(
            dict(
                tissue=types[-1],
                instances=len(inst_cls),
                class_pixels=[int((cmap == c).sum()) for c in range(NUM_CLASSES)],
                class_instances=[sum(1 for v in inst_cls.values() if v == c) for c in range(NUM_CLASSES)],
                inst=inst.reshape(-1).tolist(),
                rgb_sum=int(np.clip(np.rint(images[i].astype(np.float64)), 0, 255).sum()),
            )
        )
    return images, masks, np.array(types), expected


# --------------------------------------------------------------------------------------------


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    info = json.loads((TILES / "inst_class.json").read_text())
    gt = {}
    for name in ("patch1", "patch2", "patch3"):
        inst = read_png(TILES / f"{name}_inst.png").astype(np.int64)
        typ = read_png(TILES / f"{name}_type.png").astype(np.int64)
        cls = {int(k): int(v) for k, v in info[name]["inst_class"].items()}
        gt[name] = (inst, typ, cls, int(info[name]["tissue_class"]))

    mild = dict(keep=4, erode=2, dilate=2, shift=2, drop=0.3, split=0.3, merge=0.3)
    harsh = dict(keep=1, erode=1, dilate=1, shift=2, drop=1.5, split=1.5, merge=1.5)
    medium = dict(keep=2, erode=1.5, dilate=1.5, shift=2, drop=0.8, split=0.8, merge=0.8)
    # (pair name, source tile, kind, options)
    plan = [
        ("pair1", "patch1", "synthetic", dict(seed=11, weights=mild, flip_p=0.1, n_fp=2)),
        ("pair2", "patch1", "synthetic", dict(seed=12, weights=harsh, flip_p=0.35, n_fp=4)),
        ("pair3", "patch1", "empty_pred", {}),
        ("pair4", "patch2", "synthetic", dict(seed=21, weights=medium, flip_p=0.2, n_fp=3)),
        ("pair5", "patch2", "synthetic_ignore", dict(seed=22, weights=medium, flip_p=0.25, n_fp=3)),
        ("pair6", "patch2", "empty_gt", dict(seed=23)),
        ("pair7", "patch3", "synthetic", dict(seed=31, weights=medium, flip_p=0.2, n_fp=3)),
        ("pair8", "patch3", "perfect", dict(seed=32)),
    ]
    pairs = []
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    for pair, src, kind, opt in plan:
        inst, typ, cls, tissue = gt[src]
        gt_inst_path = f"../tiles/{src}_inst.png"
        gt_type_path = f"../tiles/{src}_type.png"
        if kind in ("synthetic", "synthetic_ignore"):
            pred, ptype = make_prediction(inst, cls, opt["seed"], opt["weights"], opt["flip_p"], opt["n_fp"])
        elif kind == "empty_pred":
            pred = np.zeros_like(inst)
            ptype = np.zeros_like(inst)
        elif kind == "perfect":
            rng = np.random.default_rng(opt["seed"])
            ids = instance_ids(inst)
            new = rng.permutation(np.arange(1, 60000))[: len(ids)]
            pred = np.zeros_like(inst)
            for i, n in zip(ids, new):
                pred[inst == i] = n
            ptype = typ.copy()
        elif kind == "empty_gt":
            # ground truth: nothing; prediction: a few blobs
            rng = np.random.default_rng(opt["seed"])
            empty = np.zeros_like(inst)
            pred = np.zeros_like(inst)
            ptype = np.zeros_like(inst)
            for k in range(4):
                d = disc(inst.shape, int(rng.integers(10, 246)), int(rng.integers(10, 246)), 5)
                pred[d & (pred == 0)] = 100 + k
                ptype[d & (ptype == 0)] = 1 + k
            inst, typ, cls = empty, np.zeros_like(typ), {}
            gt_inst_path = f"{pair}_gt_inst.png"
            gt_type_path = f"{pair}_gt_type.png"
            write_u16(OUT / gt_inst_path, inst)
            write_u8(OUT / gt_type_path, typ)
        else:
            raise ValueError(kind)
        if kind == "synthetic_ignore":
            typ = typ.copy()
            typ[96:160, 32:224] = IGNORE  # pixel metrics skip this block
            gt_type_path = f"{pair}_gt_type.png"
            write_u8(OUT / gt_type_path, typ)
        write_u16(OUT / f"{pair}_pred_inst.png", pred)
        write_u8(OUT / f"{pair}_pred_type.png", ptype)
        pred_cls = classes_by_majority(pred, ptype)
        valid = typ != IGNORE
        np.add.at(confusion, (typ[valid], ptype[valid]), 1)
        expected = evaluate_tile(inst, cls, pred, pred_cls)
        pairs.append(
            dict(
                name=pair,
                source=src,
                kind=kind,
                tissue=tissue,
                gt_inst=gt_inst_path,
                gt_type=gt_type_path,
                gt_inst_class={str(k): v for k, v in sorted(cls.items())},
                pred_inst=f"{pair}_pred_inst.png",
                pred_type=f"{pair}_pred_type.png",
                pred_inst_class={str(k): v for k, v in sorted(pred_cls.items())},
                expected=expected,
            )
        )
    ref = dict(
        about="Generated by tools/metrics/make_metric_fixture.py; do not edit by hand.",
        num_classes=NUM_CLASSES,
        class_names=CLASS_NAMES,
        ignore=IGNORE,
        radius=RADIUS,
        pairs=pairs,
        confusion=confusion.tolist(),
        summary=summarise(pairs, confusion, use_tissue=True),
        summary_no_tissue=summarise(pairs, confusion, use_tissue=False),
    )
    (OUT / "reference.json").write_text(json.dumps(nan_to_none(ref), indent=1, sort_keys=False) + "\n")

    # PanNuke folds: a flat one with float64 images, an official-layout one with uint8 images
    rng = np.random.default_rng(7)
    exp = {}
    images, masks, types, e = make_pannuke(rng, 3, 8, 10, np.float64)
    images[0, 0, 0] = [12.4, 254.6, 300.0]  # float images: round, clamp
    e[0]["rgb_sum"] = int(np.clip(np.rint(images[0]), 0, 255).sum())
    write_npy(OUT / "pannuke_fold" / "images.npy", images)
    write_npy(OUT / "pannuke_fold" / "masks.npy", masks)
    write_npy(OUT / "pannuke_fold" / "types.npy", types)
    exp["pannuke_fold"] = dict(height=8, width=10, tiles=e)
    images, masks, types, e = make_pannuke(rng, 2, 6, 6, np.uint8)
    base = OUT / "pannuke_official" / "Fold 9"
    write_npy(base / "images" / "fold9" / "images.npy", images)
    write_npy(base / "images" / "fold9" / "types.npy", types)
    write_npy(base / "masks" / "fold9" / "masks.npy", masks)
    exp["pannuke_official"] = dict(height=6, width=6, tiles=e)
    (OUT / "pannuke_expected.json").write_text(json.dumps(exp) + "\n")

    s = ref["summary"]
    print(json.dumps(nan_to_none(s["instance"])))
    print(json.dumps(nan_to_none(s["pixel"])))


if __name__ == "__main__":
    main()
