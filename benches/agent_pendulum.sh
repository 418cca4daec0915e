#!/usr/bin/env bash
# The long runs of docs/agent.md: `vic agent` on the pendulum for seeds 0, 1, 2 (built in) and
# seed 0 through the Gymnasium bridge, each alone on the machine (2 workers), then the figure.
#
#   bash benches/agent_pendulum.sh [OUT]        # OUT defaults to runs/agent-pendulum
#
# Needs a release build (cargo build --release) and, for the bridge, a Python with gymnasium in
# VIC_PYTHON (the figure needs matplotlib there too). About 15 minutes per run on 2 cores.
set -euo pipefail
out=${1:-runs/agent-pendulum}
vic=${VIC:-target/release/vic}
mkdir -p "$out"
flags=(--env-steps 20000 --train-every 5 --actor-lr 2e-4 --critic-lr 5e-4 --eval-every 2000 --eval-episodes 20)
for seed in 0 1 2; do
  /usr/bin/time -f "%e s wall, %M KiB max RSS" -o "$out/seed$seed.time" \
    "$vic" agent models/dreamer_pendulum.vmodel --env pendulum --seed "$seed" "${flags[@]}" \
    --force --out "$out/seed$seed" | tee "$out/seed$seed.log"
done
if [ -n "${VIC_PYTHON:-}" ]; then
  /usr/bin/time -f "%e s wall, %M KiB max RSS" -o "$out/gym0.time" \
    "$vic" agent models/dreamer_pendulum.vmodel --env gym:Pendulum-v1 --seed 0 "${flags[@]}" \
    --force --out "$out/gym0" | tee "$out/gym0.log"
  KNOWN_DYNAMICS=${KNOWN_DYNAMICS:-nan} "$VIC_PYTHON" benches/agent_curves.py "$out" docs/img/agent_pendulum.png
fi
