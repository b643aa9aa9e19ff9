#!/usr/bin/env bash
# Builds the comparison harness (the `compare` bench target, benches/compare.rs, in cargo's
# bench profile) and prints the path of its executable, for the scripts and profilers that run
# it directly. `cargo bench --bench compare -- ARGS` runs the same program.
#
#   bin=$(tools/bench/build.sh)                                  # then "$bin" --rows forward ...
#   tools/bench/build.sh --features cuda --target-dir target-cuda   # for tools/device/bench.sh
#
# Arguments go to `cargo bench --no-run`; cargo's messages go to stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo bench --bench compare --no-run --message-format=json-render-diagnostics "$@" | python3 -c '
import json, sys
exe = [m["executable"] for m in map(json.loads, sys.stdin)
       if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "compare"
       and m.get("executable")]
if not exe:
    sys.exit("tools/bench/build.sh: cargo reported no executable for the compare bench")
print(exe[-1])'
