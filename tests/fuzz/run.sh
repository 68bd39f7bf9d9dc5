#!/usr/bin/env bash
# Runs one libFuzzer target for a fixed time with a fixed seed (CTest label
# fuzz).  usage: run.sh TARGET WORKDIR SEED_CORPUS_DIR SECONDS
# New inputs go to WORKDIR/corpus (the seed corpus is read only); a crash,
# leak or timeout leaves its input in WORKDIR/ and fails the test.
set -euo pipefail
bin=$1; work=$2; seeds=$3; secs=$4
mkdir -p "$work/corpus"
dirs=("$work/corpus")
[ -d "$seeds" ] && dirs+=("$seeds")
exec "$bin" -seed=1 -max_total_time="$secs" -timeout=60 -rss_limit_mb=2048 \
     -print_final_stats=1 -artifact_prefix="$work/" "${dirs[@]}"
