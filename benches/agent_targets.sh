#!/usr/bin/env bash
# Issue 19's targets (docs/agent.md): `vic agent models/dreamer.vmodel` with the CLI defaults on
# the built-in pendulum and gym:Pendulum-v1 (20,000 steps) and gym:CartPole-v1 (50,000 steps),
# seeds 0, 1, 2, one after another so that each run has the machine to itself; then the figure.
#
#   VIC_PYTHON=/path/to/venv/bin/python bash benches/agent_targets.sh [OUT] [RUN...]
#
# OUT defaults to runs/agent-targets; RUN names (e.g. cartpole-seed1) pick runs, all by default.
# `mcc-seedS` (gym:MountainCarContinuous-v0, 20,000 steps: the issue's run without a return
# target) is not among the defaults.
# Needs a release build (cargo build --release) and a Python with gymnasium (and matplotlib for
# the figure) in VIC_PYTHON. About 9 min per pendulum run and 23 min per CartPole run on 2 cores
# (2026-12-07, docs/agent.md).
set -euo pipefail
out=${1:-runs/agent-targets}
shift || true
vic=${VIC:-target/release/vic}
: "${VIC_PYTHON:?set VIC_PYTHON to a Python with gymnasium}"
mkdir -p "$out"
all=()
for s in 0 1 2; do all+=("pendulum-seed$s" "gym-pendulum-seed$s" "cartpole-seed$s"); done
picked=("${@:-${all[@]}}")
for name in "${picked[@]}"; do
  seed=${name##*-seed}
  case $name in
    pendulum-*) env=pendulum; steps=20000 ;;
    gym-pendulum-*) env=gym:Pendulum-v1; steps=20000 ;;
    cartpole-*) env=gym:CartPole-v1; steps=50000 ;;
    mcc-*) env=gym:MountainCarContinuous-v0; steps=20000 ;;
    *) echo "unknown run $name" >&2; exit 2 ;;
  esac
  /usr/bin/time -f "%e s wall, %M KiB max RSS" -o "$out/$name.time" \
    "$vic" agent models/dreamer.vmodel --env "$env" --env-steps "$steps" --seed "$seed" \
    --force --out "$out/$name" > "$out/$name.log" 2>&1
done
"$VIC_PYTHON" benches/agent_targets.py "$out" "$out/agent_targets.png"
