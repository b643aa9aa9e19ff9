#!/usr/bin/env bash
# Bounded fuzzing smoke run of the C ABI (issue 8): builds the cargo-fuzz targets in fuzz/
# with AddressSanitizer and runs each for a fixed time, then prints executions and time.
#
#   tools/fuzz/smoke.sh [SECONDS_PER_TARGET]      (default 60; or FUZZ_SECONDS)
#
# Targets: `weights` (safetensors bytes -> load and create) and `segment` (image views and
# segmentation on small sizes); harnesses in fuzz/src/lib.rs. New inputs go to
# fuzz/corpus/<target>/ (git-ignored), seeded from fuzz/seeds/<target>/. A crash stops the run
# with exit status 1 and leaves the input in fuzz/artifacts/<target>/: copy it to
# fuzz/regressions/<target>/ so `cargo test` replays it.
#
# Toolchain: only stable Rust is installed here. cargo-fuzz needs `-Zsanitizer=address`, a
# nightly flag; RUSTC_BOOTSTRAP=1 lets the stable compiler accept it (the sanitizer runtime
# ships with the stable toolchain). If that build fails, the script falls back to
# `--sanitizer none` (libFuzzer's coverage guidance still works; Rust's own bounds checks and
# the harness's assertions still catch errors) and says so.
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds="${1:-${FUZZ_SECONDS:-60}}"
targets=(weights segment)
export RUSTC_BOOTSTRAP=1

echo "== fuzz: cargo-fuzz"
if ! cargo fuzz --version >/dev/null 2>&1; then
  t0=$(date +%s)
  cargo install cargo-fuzz --version 0.13.2 --locked
  echo "installed cargo-fuzz in $(( $(date +%s) - t0 )) s"
fi
cargo fuzz --version

echo "== fuzz: build (optimised, debug assertions and overflow checks, AddressSanitizer)"
# 16 codegen units: a much faster first build than cargo-fuzz's default of 1, for somewhat
# slower execution; -a: integer overflow in size arithmetic panics instead of wrapping.
build_flags=(--debug-assertions --codegen-units 16)
sanitizer=address
t0=$(date +%s)
if ! (cd fuzz && cargo fuzz build "${build_flags[@]}" --sanitizer address); then
  echo "WARNING: the AddressSanitizer build failed; building without a sanitizer" >&2
  sanitizer=none
  rm -rf fuzz/target
  (cd fuzz && cargo fuzz build "${build_flags[@]}" --sanitizer none)
fi
echo "built in $(( $(date +%s) - t0 )) s (sanitizer: $sanitizer)"
bin_dir=fuzz/target/x86_64-unknown-linux-gnu/release
if [ "$sanitizer" = address ]; then
  for t in "${targets[@]}"; do
    if [ "$(nm "$bin_dir/$t" 2>/dev/null | grep -c __asan_init)" = 0 ]; then
      echo "fuzz target $t has no AddressSanitizer runtime linked" >&2
      exit 1
    fi
  done
  echo "AddressSanitizer is linked into: ${targets[*]}"
fi

declare -A max_len=([weights]=65536 [segment]=1024)
declare -A extra=([weights]="-dict=dict/weights.dict" [segment]="")
summary=()
status=0
for t in "${targets[@]}"; do
  echo "== fuzz: $t for ${seconds} s"
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  log="fuzz/artifacts/$t/smoke.log"
  t0=$(date +%s)
  set +e
  # shellcheck disable=SC2086
  (cd fuzz && cargo fuzz run "${build_flags[@]}" --sanitizer "$sanitizer" "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$seconds" -timeout=60 -rss_limit_mb=4096 -max_len="${max_len[$t]}" \
    -print_final_stats=1 ${extra[$t]}) >"$log" 2>&1
  rc=$?
  set -e
  wall=$(( $(date +%s) - t0 ))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  runs=${runs:-$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)}
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  if [ "$rc" -ne 0 ]; then
    status=1
    tail -40 "$log"
    echo "FUZZ FAILURE in $t (exit $rc); input(s): $(ls fuzz/artifacts/$t | grep -v smoke.log | tr '\n' ' ')" >&2
    summary+=("fuzz: $t: FAILED after ${runs:-?} executions in ${wall} s (log $log)")
  else
    summary+=("fuzz: $t: ${runs:-?} executions in ${seconds} s of fuzzing (${wall} s with start-up), $((${runs:-0} / seconds))/s, corpus ${corpus} inputs, 0 crashes")
  fi
done
echo "== fuzz: summary (sanitizer: $sanitizer)"
printf '%s\n' "${summary[@]}"
exit $status
