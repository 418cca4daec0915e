#!/usr/bin/env bash
# DreamerV3's stabilisers, measured (docs/agent.md): `vic agent models/dreamer.vmodel` on the
# built-in pendulum, seed 0, 20,000 steps, with each of --return-norm, --symlog-rewards and
# --slow-critic 0.02 alone and all three together; and gym:CartPole-v1, seed 0, 50,000 steps,
# with all three. Everything else is the CLI default of 2026-12-06, when these were measured:
# imagination from all 800 of the batch's posterior states (`--starts 800`, passed below; the
# default is now 400), so each run compares with the run of the same seed in
# benches/results/agent-2026-12-06-targets/ (benches/agent_targets.sh with those defaults).
#
#   VIC_PYTHON=/path/to/venv/bin/python JOBS=2 bash benches/agent_stabilisers.sh [OUT] [RUN...]
#
# OUT defaults to runs/agent-stabilisers; RUN names pick runs (all by default). JOBS runs that
# many at once (default 1): a run's returns do not depend on the load (only on --threads, left
# at its default), but its wall time does, so the times of runs made with JOBS > 1 mean little.
# About 16 min per pendulum run and 45 min for CartPole on 2 cores, alone.
set -euo pipefail
out=${1:-runs/agent-stabilisers}
shift || true
vic=${VIC:-target/release/vic}
jobs=${JOBS:-1}
: "${VIC_PYTHON:?set VIC_PYTHON to a Python with gymnasium}"
mkdir -p "$out"
all=(pendulum-seed0-return-norm pendulum-seed0-symlog pendulum-seed0-slow-critic
     pendulum-seed0-all cartpole-seed0-all)
picked=("${@:-${all[@]}}")
run() {
  local name=$1 env steps flags
  case $name in
    pendulum-*) env=pendulum; steps=20000 ;;
    cartpole-*) env=gym:CartPole-v1; steps=50000 ;;
    *) echo "unknown run $name" >&2; return 2 ;;
  esac
  case $name in
    *-return-norm) flags=(--return-norm) ;;
    *-symlog) flags=(--symlog-rewards) ;;
    *-slow-critic) flags=(--slow-critic 0.02) ;;
    *-all) flags=(--return-norm --symlog-rewards --slow-critic 0.02) ;;
    *) echo "unknown run $name" >&2; return 2 ;;
  esac
  /usr/bin/time -f "%e s wall, %M KiB max RSS" -o "$out/$name.time" \
    "$vic" agent models/dreamer.vmodel --env "$env" --env-steps "$steps" --seed 0 --starts 800 \
    "${flags[@]}" \
    --force --out "$out/$name" > "$out/$name.log" 2>&1
}
export -f run
export out vic VIC_PYTHON
printf '%s\n' "${picked[@]}" | xargs -P "$jobs" -I{} bash -c 'run {}'
"$VIC_PYTHON" benches/agent_stabilisers.py "$out" benches/results/agent-2026-12-06-targets \
  "$out/agent_stabilisers.png"
