#!/usr/bin/env python3
"""Reads the last line of `cargo bench --bench compare -- --rows image --json` on stdin; prints
how time and memory grow with the image side, and the time for a 40x whole slide
(100,000 x 80,000 px) from the throughput of the largest image measured. Standard library only.

"RSS before the call" includes the input image (3 bytes per pixel); "growth less result maps"
subtracts the class map (1 byte per pixel) and the instance label map (4 bytes per pixel) that
the result holds, leaving the working memory of the tiled inference."""

import json
import sys

SLIDE_W, SLIDE_H = 100_000, 80_000


def main():
    data = json.loads(sys.stdin.read().strip().splitlines()[-1])
    rows = sorted((r for r in data["rows"] if r.get("kind") == "segment_image"),
                  key=lambda r: r["size"])
    if not rows:
        sys.exit("no segment_image rows")
    first = rows[0]
    print("| image | megapixels | tiles | seconds | s per MP | MP/s | peak RSS MiB | RSS before the call MiB | growth in the call MiB | growth less result maps MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        mp = r["size"] ** 2 / 1e6
        base = r.get("base_rss_mib") or float("nan")
        peak = r.get("peak_rss_mib") or float("nan")
        print(f"| {r['size']}x{r['size']} | {mp:.1f} | {r['tiles']} | {r['seconds']:.2f} | "
              f"{r['seconds'] / mp:.3f} | {r['megapixels_per_s']:.3f} | {peak:.0f} | {base:.0f} | "
              f"{peak - base:.0f} | {peak - base - 5 * r['size'] ** 2 / 2**20:.0f} |")
    last = rows[-1]
    k = (last["seconds"] / last["size"] ** 2) / (first["seconds"] / first["size"] ** 2)
    print(f"time per pixel, {last['size']} vs {first['size']}: {k:.2f}x (1.00 = linear in pixels)")
    slide_mp = SLIDE_W * SLIDE_H / 1e6
    secs = slide_mp / last["megapixels_per_s"]
    print(f"whole slide {SLIDE_W:,} x {SLIDE_H:,} px ({slide_mp:,.0f} MP) at "
          f"{last['megapixels_per_s']:.3f} MP/s ({data.get('threads')} threads, "
          f"{last.get('device', 'cpu')}): {secs / 3600:.1f} h")


if __name__ == "__main__":
    main()
