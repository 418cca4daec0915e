"""The figure of docs/agent.md: evaluation returns of `vic agent` runs against environment steps.

    python benches/agent_curves.py RUNS_DIR OUT.png

RUNS_DIR holds seed0/, seed1/, seed2/ (built-in pendulum) and optionally gym0/ (Gymnasium
through the bridge), each with its episodes.jsonl. The random policy's mean and the
known-dynamics policy's mean (docs/agent.md) are drawn as horizontal references.
"""

import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from agent_targets import evaluations  # noqa: E402 (benches/, the script's folder)

RANDOM = -1208.2  # examples/random_policy.rs, 200 episodes (docs/agent.md)
TARGET = -200.0


def curve(path):
    ev = evaluations(path)
    return [s for s, _, _ in ev], [m for _, m, _ in ev], [e for _, _, e in ev]


def main():
    runs, out = sys.argv[1], sys.argv[2]
    known = float(os.environ.get("KNOWN_DYNAMICS", "nan"))
    colours = ["#0072B2", "#D55E00", "#009E73", "#CC79A7"]
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=120)
    names = [("seed0", "built-in pendulum, seed 0"), ("seed1", "built-in pendulum, seed 1"),
             ("seed2", "built-in pendulum, seed 2"), ("gym0", "gym:Pendulum-v1 (bridge), seed 0")]
    for (d, label), c in zip(names, colours):
        p = os.path.join(runs, d, "episodes.jsonl")
        if not os.path.exists(p):
            continue
        s, m, se = curve(p)
        ax.errorbar(s, m, yerr=se, label=label, color=c, marker="o", ms=4, capsize=3,
                    ls="--" if d.startswith("gym") else "-")
    ax.axhline(RANDOM, color="grey", ls=":", label="random policy (200 episodes)")
    if not math.isnan(known):
        ax.axhline(known, color="black", ls="-.", label="pendulum_control, known dynamics (did not learn)")
    ax.axhline(TARGET, color="#E69F00", lw=1, label="target −200")
    ax.set_xlabel("environment steps (training episodes)")
    ax.set_ylabel("mean evaluation return (policy mode, 20 fixed starts, ± s.e.)")
    ax.set_title("vic agent models/dreamer_pendulum.vmodel")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    fig.tight_layout()
    fig.savefig(out)


if __name__ == "__main__":
    main()
