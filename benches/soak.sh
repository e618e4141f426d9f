#!/usr/bin/env bash
# Kill -9 soak: kills the server at random moments under load, KILLS times,
# then checks that every acknowledged record is stored exactly once and that
# nothing torn, duplicated or never sent was stored (tests/soak.rs).
#
#   benches/soak.sh [KILLS]        # default 20; the README's figure used 200
#
# Off by default in CI (the test is #[ignore]). Builds the tests in release
# mode. Traffic goes to 127.0.0.1 only; the run is bounded (30 s per kill at
# most, then it fails). SLUICE_SOAK_SEED=<n> replays a run's kill timings.
# The server inherits the environment: SLUICE_DURABILITY=disk soaks disk mode.
set -euo pipefail
cd "$(dirname "$0")/.."
export SLUICE_SOAK_KILLS=${1:-20}
exec cargo test --release --test soak -- --ignored --nocapture
