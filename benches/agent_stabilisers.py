"""The table and figure of DreamerV3's stabilisers (docs/agent.md): each run of
benches/agent_stabilisers.sh against the default run of the same environment and seed.

    python benches/agent_stabilisers.py RUNS_DIR DEFAULTS_DIR OUT.png      # needs matplotlib

RUNS_DIR holds pendulum-seed0-{return-norm,symlog,slow-critic,all}/ and cartpole-seed0-all/;
DEFAULTS_DIR the default runs pendulum-seed0/ and cartpole-seed0/ with the same --starts
(benches/results/agent-2026-12-06-targets: all 800, as agent_stabilisers.sh passes).
A missing run is skipped, and so is a panel with no stabiliser run. Printed on stdout: the
mean of the last three evaluations, the first evaluation at or past the target, how many
evaluations from then on stay at or past it, the mean of all evaluations (the area under the
curve: how fast it learns) and the wall time.
"""

import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agent_targets import evaluations, finish_figure, finish_panel, wall_seconds  # noqa: E402

# (environment prefix, title, target, budget, [(variant suffix, flags shown)])
PANELS = [
    ("pendulum", "built-in pendulum, seed 0", -200.0, 20000, [
        ("", "defaults (800 starts)"),
        ("-return-norm", "--return-norm"),
        ("-symlog", "--symlog-rewards"),
        ("-slow-critic", "--slow-critic 0.02"),
        ("-all", "all three"),
    ]),
    ("cartpole", "gym:CartPole-v1 (bridge), seed 0", 450.0, 50000, [
        ("", "defaults (800 starts)"),
        ("-all", "all three"),
    ]),
]
COLOURS = ["#000000", "#0072B2", "#D55E00", "#009E73", "#CC79A7"]


def main():
    runs, defaults, out = sys.argv[1], sys.argv[2], sys.argv[3]
    # A panel without any run of a stabiliser is left out.
    panels = [p for p in PANELS if any(
        os.path.exists(os.path.join(runs, f"{p[0]}-seed0{v}", "episodes.jsonl"))
        for v, _ in p[4][1:])]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), dpi=110,
                             squeeze=False)
    axes = axes[0]
    print("| environment | flags | last three evaluations | mean | first ≥ target "
          "| evaluations ≥ target from then | mean of all evaluations | wall time |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for ax, (env, title, target, budget, variants) in zip(axes, panels):
        for (suffix, flags), colour in zip(variants, COLOURS):
            base = defaults if suffix == "" else runs
            name = f"{env}-seed0{suffix}"
            path = os.path.join(base, name, "episodes.jsonl")
            if not os.path.exists(path):
                continue
            ev = evaluations(path)
            means = [m for _, m, _ in ev]
            last3 = means[-3:]
            mean3 = sum(last3) / len(last3)
            first = next((i for i, m in enumerate(means) if m >= target), None)
            held = "—" if first is None else \
                f"{sum(m >= target for m in means[first:])} of {len(means) - first}"
            wall = wall_seconds(base, name)
            shown = "—" if wall != wall else f"{int(wall // 60)} min {int(wall % 60)} s"
            ax.errorbar([s for s, _, _ in ev], means, yerr=[e for _, _, e in ev], color=colour,
                        marker="o", ms=3, capsize=2, lw=1.2 if suffix else 2.0,
                        label=f"{flags}: last three {mean3:.1f}")
            print(f"| {title} | {flags} | {' / '.join(f'{m:.1f}' for m in last3)} | "
                  f"**{mean3:.1f}** | {ev[first][0] if first is not None else '—'} | {held} | "
                  f"{sum(means) / len(means):.1f} | {shown} |")
        finish_panel(ax, title, target, budget)
    finish_figure(fig, axes, "DreamerV3's stabilisers against the defaults", out)


if __name__ == "__main__":
    main()
