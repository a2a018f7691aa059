#!/usr/bin/env bash
# Regenerates the golden replay log and its digest (tests/integration/replay_test.cc):
# a seeded 15 minutes of the example city, simulated into the embedded broker,
# recorded, and replayed once for the expected digest. Run it after a change
# that is meant to alter the engine's output, and say why in the commit.
#   tests/data/replay/make-golden.sh build/bin/cityloop
set -euo pipefail
BIN=$(realpath "${1:?usage: make-golden.sh path/to/cityloop}")
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
CONFIG="$ROOT/deploy/cityloop.example.yaml"
WORK=$(mktemp -d)
trap 'kill $BROKER 2>/dev/null || true; rm -rf "$WORK"' EXIT

"$BIN" broker --config "$CONFIG" --bootstrap-file "$WORK/bootstrap" > "$WORK/broker.log" 2>&1 &
BROKER=$!
for _ in $(seq 100); do [ -s "$WORK/bootstrap" ] && break; sleep 0.1; done
BS=$(cat "$WORK/bootstrap")
"$BIN" simulate --bootstrap "$BS" --config "$CONFIG" --fast --duration 900 --rate 10 --seed 11 \
  --incident-every 90s --camera-fps 0 --start 2026-11-28T09:00:00+08:00 > "$WORK/sim.log" 2>&1
rm -rf "$HERE/golden"
"$BIN" record --config "$CONFIG" --bootstrap "$BS" --out "$HERE/golden" --until-caught-up
"$BIN" replay --config "$CONFIG" --log "$HERE/golden" --out "$WORK/out" --progress none
cp "$WORK/out/digest" "$HERE/golden.digest"
echo "golden log: $(du -sh "$HERE/golden" | cut -f1), digest $(cat "$HERE/golden.digest")"
