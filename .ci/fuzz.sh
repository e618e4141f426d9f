#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and exits
# non-zero if any of them finds a crash (a broken property or a panic).
#
#   .ci/fuzz.sh [SECONDS_PER_TARGET]     # default 20 (or SLUICE_FUZZ_SECONDS)
#
# With SLUICE_FUZZ_RUNS=N each target instead runs exactly N inputs from a
# fixed seed (still capped by SECONDS_PER_TARGET × 6): the same inputs every
# time, which is what CI wants from a gate. Long exploratory runs use time.
#
# Only a stable toolchain is installed, so RUSTC_BOOTSTRAP=1 lets cargo-fuzz
# pass its -Z flags (sanitizer, coverage instrumentation). AddressSanitizer
# is used when its runtime builds; otherwise the targets run without one.
# A crashing input is left in fuzz/artifacts/<target>/; replay it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-${SLUICE_FUZZ_SECONDS:-20}}
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
# libFuzzer itself is C++, built by libfuzzer-sys.
if ! command -v c++ >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++
fi

cd fuzz
sanitizer=address
if ! cargo fuzz build --sanitizer "$sanitizer"; then
  echo "building with AddressSanitizer failed; fuzzing without a sanitizer"
  sanitizer=none
  cargo fuzz build --sanitizer "$sanitizer"
fi

failed=()
for target in $(cargo fuzz list); do
  # Inputs must be able to reach the limits each parser enforces: the 16 KiB
  # header section for the HTTP reader, the 64 KiB cap of the XML target.
  case $target in
    http_head) max_len=20480 ;;
    xml_cbor | json_convert) max_len=65536 ;;
    *) max_len=4096 ;;
  esac
  mkdir -p "corpus/$target"
  if [[ -n ${SLUICE_FUZZ_RUNS:-} ]]; then
    budget=(-runs="$SLUICE_FUZZ_RUNS" -seed=1 -max_total_time=$((seconds * 6)))
    echo "== fuzz $target for $SLUICE_FUZZ_RUNS inputs (seed 1)"
  else
    budget=(-max_total_time="$seconds")
    echo "== fuzz $target for ${seconds}s"
  fi
  if ! cargo fuzz run --sanitizer "$sanitizer" "$target" "corpus/$target" "seeds/$target" -- \
    "${budget[@]}" -max_len="$max_len" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1; then
    failed+=("$target")
  fi
done
if ((${#failed[@]})); then
  echo "fuzz targets that found a crash: ${failed[*]} (inputs in fuzz/artifacts/)"
  exit 1
fi
echo "fuzz: every target ran ${seconds}s without a crash"
