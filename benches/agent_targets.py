"""The figure and table of issue 19's targets (docs/agent.md): `vic agent models/dreamer.vmodel`
with the CLI defaults on the built-in pendulum, gym:Pendulum-v1 and gym:CartPole-v1, seeds 0-2.

    python benches/agent_targets.py RUNS_DIR OUT.png      # needs matplotlib

RUNS_DIR holds the run directories that benches/agent_targets.sh writes: pendulum-seedS/,
gym-pendulum-seedS/, cartpole-seedS/, each with its episodes.jsonl (and the time file
`NAME.time` beside it, from /usr/bin/time). A missing run is skipped. The table printed on
stdout is the one in docs/agent.md: the mean of the last three evaluations, the first
evaluation at or past the target, the wall time, the wall time per update (from NAME.log)
and whether the run met its target.
"""

import json
import math
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# (prefix, title, target return, environment-step budget, wall-time limit in minutes)
PANELS = [
    ("pendulum", "built-in pendulum", -200.0, 20000, 30),
    ("gym-pendulum", "gym:Pendulum-v1 (bridge)", -200.0, 20000, 30),
    ("cartpole", "gym:CartPole-v1 (bridge)", 450.0, 50000, 45),
]
SEEDS = [0, 1, 2]
COLOURS = ["#0072B2", "#D55E00", "#009E73"]


def evaluations(path):
    """(env_step, mean, standard error) of each evaluation in an episodes.jsonl."""
    evals = {}
    for line in open(path):
        r = json.loads(line)
        if r["eval"]:
            evals.setdefault(r["env_step"], []).append(r["return"])
    out = []
    for s in sorted(evals):
        v = evals[s]
        m = sum(v) / len(v)
        var = sum((x - m) ** 2 for x in v) / max(len(v) - 1, 1)
        out.append((s, m, math.sqrt(var / len(v))))
    return out


def wall_seconds(runs, name):
    p = os.path.join(runs, name + ".time")
    words = open(p).read().split() if os.path.exists(p) else []
    return float(words[0]) if words else float("nan")  # empty while the run goes on


def ms_per_update(runs, name):
    """Wall milliseconds per update (acting and evaluations included) from the run's log."""
    p = os.path.join(runs, name + ".log")
    if not os.path.exists(p):
        return float("nan")
    last = None
    for line in open(p):
        m = re.match(r"\s*(\d+)s\s+env step\s+\d+\s+update\s+(\d+)", line)
        if m:
            last = (int(m.group(1)), int(m.group(2)))
    return float("nan") if last is None else 1000.0 * last[0] / last[1]


def main():
    runs, out = sys.argv[1], sys.argv[2]
    fig, axes = plt.subplots(1, len(PANELS), figsize=(15, 4.6), dpi=110)
    print("| run | seed | last three evaluations | mean | first ≥ target | wall time "
          "| ms per update | met |")
    print("|---|---:|---|---:|---:|---:|---:|---|")
    for ax, (prefix, title, target, budget, minutes) in zip(axes, PANELS):
        for seed, colour in zip(SEEDS, COLOURS):
            name = f"{prefix}-seed{seed}"
            path = os.path.join(runs, name, "episodes.jsonl")
            if not os.path.exists(path):
                continue
            ev = evaluations(path)
            # Evaluations within the budget (an episode that ends past it still counts: the
            # run's last evaluation is at the end of the episode that crossed the budget).
            last3 = [m for _, m, _ in ev[-3:]]
            mean3 = sum(last3) / len(last3)
            first = next((s for s, m, _ in ev if m >= target), None)
            wall = wall_seconds(runs, name)
            met = mean3 >= target and wall / 60 < minutes  # NaN (no time file) is not met
            shown = "—" if math.isnan(wall) else f"{int(wall // 60)} min {int(wall % 60)} s"
            steps = [s for s, _, _ in ev]
            ax.errorbar(steps, [m for _, m, _ in ev], yerr=[e for _, _, e in ev], color=colour,
                        marker="o", ms=3, capsize=2, lw=1.2,
                        label=f"seed {seed}: last three {mean3:.1f}")
            print(f"| {title} | {seed} | {' / '.join(f'{m:.1f}' for m in last3)} | "
                  f"**{mean3:.1f}** | {first if first is not None else '—'} | "
                  f"{shown} | {ms_per_update(runs, name):.0f} | {'yes' if met else 'NO'} |")
        finish_panel(ax, title, target, budget)
    finish_figure(fig, axes, "vic agent models/dreamer.vmodel, CLI defaults", out)


def finish_panel(ax, title, target, budget):
    """The target line, the step budget, the axes' labels and the legend of one panel."""
    ax.axhline(target, color="#E69F00", lw=1, ls="--", label=f"target {target:g}")
    ax.axvline(budget, color="grey", lw=0.8, ls=":")
    ax.set_title(title)
    ax.set_xlabel("environment steps")
    ax.xaxis.set_major_formatter(lambda x, _: f"{x / 1000:g}k")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")


def finish_figure(fig, axes, title, out):
    axes[0].set_ylabel("evaluation return (policy mode, 5 fixed starts, ± s.e.)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out)


if __name__ == "__main__":
    main()
