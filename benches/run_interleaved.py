#!/usr/bin/env python3
"""Run vic and peer baselines interleaved (A B A B …) and print vic/peer ratios with spread.

For each pass (default 3) and each chosen workload, runs `vic bench Wk --json` and then each
chosen peer script from shared/bench/peers (the configurations of the peers' own driver.py
RUNS table), every run first waiting for the machine to go idle (common.wait_quiet, via
`--wait-quiet 600`) and retried (up to 3 tries, keeping the least contended) when it saw more
than 0.15 cores of foreign load — the same policy as driver.run_one. Results go to a JSONL
file, one line per run; the summary prints, per workload and peer, the median and min–max of
steps/s over passes for both, and of the per-pass ratio vic/peer.

Run it with the peers' venv Python (it imports the peers' common.py, which needs numpy):

    /work/scratch/peers-venv/bin/python benches/run_interleaved.py \
        --vic /work/scratch/bench-target/release/vic --workloads W1 W2 W3 --peers numpyro

Peers: numpyro, jax, torch, pyro, with an optional flag filter after a colon, e.g.
`numpyro:--fuse` (the scan-fused rows), `numpyro:--loop` (W2 unrolled), `pyro:--jit`.
W4 (Dreamer RSSM), W5 (SAC-form control) and W6 (Deep Markov Model) have only `jax` and
`torch` peers (w4_jax.py, w4_torch.py, w5_jax.py, w5_torch.py, w6_jax.py, w6_torch.py); their
issue targets are against `jax` (W6: >= 3x JAX-jit):

    $PEERS_VENV/bin/python benches/run_interleaved.py --workloads W4 W5 W6 --peers jax

A workload the peers' driver.py RUNS table has no rows for yet (W6) runs each peer's script
with its defaults (`w6_jax.py`, `w6_torch.py`).

W7 (discrete VAE: c enumerated, z straight-through) has `jax` and `torch` peers (w7_jax.py,
w7_torch.py) that driver.py's RUNS table does not list yet (EXTRA_RUNS adds them); the
target is >= 1.5x `jax`:

    $PEERS_VENV/bin/python benches/run_interleaved.py --workloads W7 --peers jax

W8 (HMM, the chain summed out by the forward algorithm) has `jax` (`jax:--form logmatmul` for
the log-matmul row) and `numpyro` (TraceEnum_ELBO + markov; `numpyro:--mode scan`) peers, run
at K = 2, 4, 8 states as the workloads `W8-K2`, `W8-K4`, `W8-K8` (vic: `--states K`, the
peers: `--K K`); the target is >= 2x the best peer at each K:

    $PEERS_VENV/bin/python benches/run_interleaved.py --workloads W8-K2 W8-K4 W8-K8 \
        --peers jax 'jax:--form logmatmul' numpyro

`--dry-run` prints the commands of one pass without running anything; `--summarize
FILE.jsonl` reprints the summary of an earlier run without running anything.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def default_peers_dir():
    for p in (os.environ.get("VIC_PEERS_DIR"),
              os.path.join(REPO, "..", "shared", "bench", "peers"),
              "/work/shared/bench/peers"):
        if p and os.path.exists(os.path.join(p, "driver.py")):
            return os.path.abspath(p)
    sys.exit("cannot find shared/bench/peers (set VIC_PEERS_DIR or pass --peers-dir)")


def parse():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vic", default=os.path.join(REPO, "target", "release", "vic"),
                    help="vic binary (default: target/release/vic)")
    ap.add_argument("--peers-dir", default=None)
    ap.add_argument("--workloads", nargs="+", default=["W1", "W2", "W3"])
    ap.add_argument("--peers", nargs="+", default=["numpyro"])
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--tries", type=int, default=3, help="tries per run when contended")
    ap.add_argument("--wait-quiet", default="600",
                    help="seconds each run waits for an idle machine first (0: don't wait)")
    ap.add_argument("--vic-args", default="", help="extra args for `vic bench` (e.g. '--steps 500')")
    ap.add_argument("--peer-args", default="", help="extra args for the peer scripts")
    ap.add_argument("--out", default=None, help="JSONL output (default: interleaved-<time>.jsonl)")
    ap.add_argument("--summarize", default=None, help="only print the summary of this JSONL")
    ap.add_argument("--dry-run", action="store_true",
                    help="print the commands of one pass (vic and the peers) and exit")
    return ap.parse_args()


# Peer runs of workloads newer than driver.py's RUNS table (used only when RUNS has no row
# for the script).
EXTRA_RUNS = [
    ("w7_jax.py", []),
    ("w7_torch.py", []),
]


def peer_runs(driver_runs, workload, spec, peers_dir=None):
    """The driver.RUNS entries (script, args) for one peer spec on one workload; a script
    driver.RUNS does not list (W6) runs with its defaults."""
    lib, _, flag = spec.partition(":")
    script = f"{workload.lower()}_{lib}.py"
    if (peers_dir and not any(s == script for s, _ in driver_runs)
            and os.path.exists(os.path.join(peers_dir, script))):
        return [(script, flag.split())]
    out = []
    known = {s for s, _ in driver_runs}
    runs = list(driver_runs) + [r for r in EXTRA_RUNS if r[0] not in known]
    for s, args in runs:
        if s != script:
            continue
        if flag and flag not in args:
            continue
        if not flag and any(a.startswith("--") for a in args):
            continue  # the plain row unless a flag is asked for
        out.append((s, list(args)))
    return out


def last_json(stdout):
    for line in reversed(stdout.strip().splitlines()):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    return None


def run_one(cmd, cwd, tries, log):
    best = None
    for attempt in range(tries):
        t0 = time.time()
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
        log.write(f"\n### {' '.join(cmd)} (rc={p.returncode}, {time.time() - t0:.1f}s)\n")
        log.write(p.stderr[-20000:])
        log.flush()
        res = last_json(p.stdout)
        if res is None:
            tail = (p.stderr.strip().splitlines() or ["no output"])[-1][:300]
            return {"error": f"rc={p.returncode}: {tail}", "cmd": cmd}
        res["attempt"] = attempt + 1
        if best is None or res.get("other_cores", 0) < best.get("other_cores", 0):
            best = res
        if not res.get("contended") or attempt + 1 == tries:
            break
        print(f"# contended ({res.get('other_cores')} other cores), retrying", file=sys.stderr)
    return best


def fmt(x):
    if x is None:
        return "n/a"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.1f}"
    return f"{x:.2f}"


def spread(v):
    v = [x for x in v if x is not None]
    if not v:
        return None, None, None
    return statistics.median(v), min(v), max(v)


def summarize(rows):
    by = {}
    for r in rows:
        if "error" in r:
            continue
        by.setdefault((r["workload"], r["pass"]), []).append(r)
    workloads = sorted({w for w, _ in by})
    print("\n## vic vs peers, interleaved (steps/s: median [min-max] over passes; "
          "ratio = vic/peer per pass)\n")
    print("| workload | peer | passes | vic steps/s | peer steps/s | ratio vic/peer | "
          "vic final loss | peer final loss | vic % peak | vic peak RSS MiB | max other cores |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for w in workloads:
        passes = sorted(p for ww, p in by if ww == w)
        peers = sorted({r["system"] for p in passes for r in by[(w, p)] if r["system"] != "vic"})
        for peer in peers:
            vic_s, peer_s, ratios, vl, pl, pk, rss, oc = [], [], [], [], [], [], [], []
            for p in passes:
                rs = by[(w, p)]
                v = [r for r in rs if r["system"] == "vic"]
                q = [r for r in rs if r["system"] == peer]
                if not v or not q:
                    continue
                v, q = v[0], q[0]
                vic_s.append(v["steps_per_s"])
                peer_s.append(q["steps_per_s"])
                ratios.append(v["steps_per_s"] / q["steps_per_s"])
                vl.append(v["final_loss"])
                pl.append(q["final_loss"])
                pk.append(v.get("pct_peak"))
                rss.append(v.get("peak_rss_kb", 0) / 1024)
                oc.append(max(v.get("other_cores", 0), q.get("other_cores", 0)))
            if not ratios:
                continue
            a, b, c = spread(vic_s), spread(peer_s), spread(ratios)
            print(f"| {w} | {peer} | {len(ratios)} | {fmt(a[0])} [{fmt(a[1])}-{fmt(a[2])}] | "
                  f"{fmt(b[0])} [{fmt(b[1])}-{fmt(b[2])}] | {c[0]:.2f}x [{c[1]:.2f}-{c[2]:.2f}] | "
                  f"{fmt(spread(vl)[0])} | {fmt(spread(pl)[0])} | "
                  f"{fmt(spread(pk)[0]) + '%' if spread(pk)[0] is not None else 'n/a'} | "
                  f"{fmt(max(rss))} | {max(oc):.2f} |")


def summarize_control(rows):
    """W5 (control): the final alpha, policy entropy per step and return per rollout."""
    rs = [r for r in rows if "error" not in r and "return" in r]
    if not rs:
        return
    print("\n## control workloads (median over passes: alpha at the end; entropy per step and "
          "return per rollout over the loss window)\n")
    print("| workload | system | runs | alpha | policy entropy | return |")
    print("|---|---|---:|---:|---:|---:|")
    for key in sorted({(r["workload"], r["system"]) for r in rs}):
        sel = [r for r in rs if (r["workload"], r["system"]) == key]
        def med(k):
            m = spread([r.get(k) for r in sel])[0]
            return "n/a" if m is None else f"{m:.4g}"
        print(f"| {key[0]} | {key[1]} | {len(sel)} | {med('alpha')} | {med('policy_entropy')} | "
              f"{med('return')} |")


def main():
    a = parse()
    if a.summarize:
        with open(a.summarize) as f:
            rows = [json.loads(l) for l in f if l.strip()]
        summarize(rows)
        summarize_control(rows)
        return
    peers_dir = os.path.abspath(a.peers_dir or default_peers_dir())
    sys.path.insert(0, peers_dir)
    import common  # noqa: E402  (sets the thread env vars; wait_quiet)
    import driver  # noqa: E402  (RUNS: the peers' own configurations)

    vic = os.path.abspath(a.vic)

    def variant(w):
        """`W8-K4` -> ("W8", vic args, peer args) for K = 4 states; others as they are."""
        base, _, k = w.partition("-K")
        if k:
            return base, ["--states", k], ["--K", k]
        return w, [], []

    def plan_of(w):
        """vic, then each peer's driver.RUNS rows, for workload w."""
        base, vic_extra, peer_extra = variant(w)
        plan = [("vic", [vic, "bench", base, "--json", "--wait-quiet", a.wait_quiet, *vic_extra,
                         *a.vic_args.split()], REPO)]
        for spec in a.peers:
            runs = peer_runs(driver.RUNS, base, spec, peers_dir)
            if not runs:
                print(f"# no peer run for {spec} on {w}", file=sys.stderr)
            for script, args in runs:
                plan.append((spec, [sys.executable, os.path.join(peers_dir, script), *args,
                                    *peer_extra, "--wait-quiet", a.wait_quiet,
                                    *a.peer_args.split()], peers_dir))
        return plan

    if a.dry_run:
        for w in a.workloads:
            for _, cmd, cwd in plan_of(w):
                print(f"(cd {cwd} && {' '.join(cmd)})")
        return
    if not os.access(vic, os.X_OK):
        sys.exit(f"no vic binary at {vic} (cargo build --release, or pass --vic)")
    out = a.out or os.path.join(os.getcwd(), time.strftime("interleaved-%Y%m%d-%H%M%S.jsonl"))
    log = open(out + ".stderr.log", "a")
    rows = []
    with open(out, "a") as f:
        for p in range(1, a.passes + 1):
            for w in a.workloads:
                plan = plan_of(w)
                # A B A B: vic, then each peer, in this order every pass
                for _, cmd, cwd in plan:
                    load = os.getloadavg()[0]
                    r = run_one(cmd, cwd, a.tries, log)
                    r["workload"] = w  # W8-K4: the variant, not the script's W8
                    r.setdefault("system", "?")
                    r["pass"] = p
                    r["loadavg1_before"] = round(load, 2)
                    r["cmd"] = " ".join(os.path.basename(c) if i < 2 else c for i, c in enumerate(cmd))
                    rows.append(r)
                    f.write(json.dumps(r) + "\n")
                    f.flush()
                    if "error" in r:
                        print(f"pass {p} {w} ERROR {r['error']}", flush=True)
                    else:
                        print(f"pass {p} {w} {r['system']:<24} {r['steps_per_s']:>10.1f} steps/s "
                              f"loss {r['final_loss']:.3f} other {r.get('other_cores')}", flush=True)
    print(f"\nwrote {out}")
    summarize(rows)
    summarize_control(rows)


if __name__ == "__main__":
    main()
