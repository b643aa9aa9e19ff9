#!/usr/bin/env bash
# A/B of two revisions on this machine: builds the comparison harness at each (git worktrees,
# this checkout's target folder, so only the crate itself recompiles), then runs the same
# rows ROUNDS times, alternating A and B, and prints each row's minimum time per round.
# Alternating spreads the shared machine's drift over both sides.
#
#   tools/bench/ab.sh REV_A REV_B [options of cargo bench --bench compare -- ...]
#   ROUNDS=3 ITERS=8 tools/bench/ab.sh 8d94954 3ebab11 --rows forward,train-sup --presets lite
#
# Defaults: ROUNDS=3, ITERS=8, THREADS=2, and `--raa off --batch 1,8` unless given. A revision
# without the `compare` bench target (benches/compare.rs) runs `csranet bench`, which took the
# same options there.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] || { sed -n '2,12p' "$0"; exit 2; }
a=$1 b=$2
shift 2
rounds=${ROUNDS:-3} iters=${ITERS:-8} threads=${THREADS:-2}
defaults=()
case " $* " in *" --raa "*) ;; *) defaults+=(--raa off) ;; esac
case " $* " in *" --batch "*) ;; *) defaults+=(--batch 1,8) ;; esac
root=$(pwd)
work=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$work/a" >/dev/null 2>&1 || true;
      git -C "$root" worktree remove --force "$work/b" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
for side in a b; do
  rev=${!side}
  git worktree add --detach -q "$work/$side" "$rev"
  if [ -f "$work/$side/benches/compare.rs" ]; then
    exe=$(CARGO_TARGET_DIR="$root/target" "$work/$side/tools/bench/build.sh" -q)
    cp "$exe" "$work/bench-$side"
  else
    (cd "$work/$side" && CARGO_TARGET_DIR="$root/target" cargo build --release -q --bin csranet)
    cp "$root/target/release/csranet" "$work/csranet-$side"
    printf '#!/bin/sh\nexec "%s" bench "$@"\n' "$work/csranet-$side" > "$work/bench-$side"
    chmod +x "$work/bench-$side"
  fi
done
for r in $(seq "$rounds"); do
  for side in a b; do
    "$work/bench-$side" "${defaults[@]}" --iters "$iters" --threads "$threads" \
      "$@" --json 2>/dev/null | tail -1 | python3 -c "
import json, sys
for row in json.loads(sys.stdin.read())['rows']:
    ms = row.get('min_ms', row.get('seconds', 0) * 1000)
    print('$side', row['kind'], row['preset'], row.get('batch', ''), round(ms, 1))"
  done
done | sort -k2,4 -k1,1 | awk '{k=$2" "$3" b"$4" "$1; v[k]=v[k]" "$5} END {for (k in v) print k ":" v[k] " ms"}' \
  | sort | sed "s/ a:/ $a:/; s/ b:/ $b:/"
