# The curve of docs/agent.md: run from the repository root with a Python that has cairosvg.
#   python benches/results/known-2026-12-07/plot.py [RUNS]
# RUNS holds seed0/ seed1/ seed2/ (default: this folder; the 2026-12-06 runs:
# benches/results/known-2026-12-06/alpha0.1).
import json, collections, sys
D = sys.argv[1] if len(sys.argv) > 1 else 'benches/results/known-2026-12-07'
runs = {}
for s in (0, 1, 2):
    d = collections.defaultdict(list)
    for l in open(f'{D}/seed{s}/episodes.jsonl'):
        r = json.loads(l)
        if r['eval']: d[r['env_step']].append(r['return'])
    runs[s] = sorted((k, sum(v)/len(v)) for k, v in d.items())
W, H, L, R, T, B = 1000, 500, 80, 200, 50, 60
x0, x1, y0, y1 = 0, 8000, -1600, 0
X = lambda x: L + (x - x0) / (x1 - x0) * (W - L - R)
Y = lambda y: T + (y1 - y) / (y1 - y0) * (H - T - B)
col = ['#0072b2', '#d55e00', '#009e73']
o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="13"><rect width="{W}" height="{H}" fill="white"/>']
o.append(f'<text x="{W/2}" y="25" text-anchor="middle" font-size="17">pendulum_known (known dynamics, α = 0.1): evaluation mean of 20 fixed starts, built-in pendulum</text>')
for y in range(-1600, 1, 200):
    o.append(f'<line x1="{L}" x2="{W-R}" y1="{Y(y)}" y2="{Y(y)}" stroke="#ddd"/><text x="{L-8}" y="{Y(y)+4}" text-anchor="end">{y}</text>')
for x in range(0, 8001, 1000):
    o.append(f'<line x1="{X(x)}" x2="{X(x)}" y1="{T}" y2="{H-B}" stroke="#eee"/><text x="{X(x)}" y="{H-B+18}" text-anchor="middle">{x}</text>')
o.append(f'<line x1="{L}" x2="{W-R}" y1="{Y(-200)}" y2="{Y(-200)}" stroke="#888" stroke-dasharray="6,4"/><text x="{W-R+6}" y="{Y(-200)+4}">−200 (target)</text>')
for s, pts in runs.items():
    p = ' '.join(f'{X(a):.1f},{Y(b):.1f}' for a, b in pts)
    o.append(f'<polyline points="{p}" fill="none" stroke="{col[s]}" stroke-width="2"/>')
    for a, b in pts: o.append(f'<circle cx="{X(a):.1f}" cy="{Y(b):.1f}" r="3" fill="{col[s]}"/>')
    o.append(f'<line x1="{W-R+10}" x2="{W-R+35}" y1="{T+230+20*s}" y2="{T+230+20*s}" stroke="{col[s]}" stroke-width="3"/><text x="{W-R+40}" y="{T+234+20*s}">seed {s}</text>')
o.append(f'<text x="{(L+W-R)/2}" y="{H-15}" text-anchor="middle">behaviour updates (512 start states each, imagined in the known model)</text>')
o.append(f'<text x="20" y="{(T+H-B)/2}" transform="rotate(-90 20 {(T+H-B)/2})" text-anchor="middle">return (Gym reward)</text></svg>')
open('docs/img/known_pendulum.svg', 'w').write('\n'.join(o))
import cairosvg
cairosvg.svg2png(url='docs/img/known_pendulum.svg', write_to='docs/img/known_pendulum.png', output_width=1000)
