"""models/data/pendulum_cont.npz: pendulum_std.npz with the continuation flag `c` of
models/dreamer.vmodel. Pendulum-v1 episodes are truncated at 200 steps, never terminated, so
c = 1 at every step (a terminated episode's last step would be 0).

    python scripts/make_pendulum_cont.py
"""
import numpy as np

d = dict(np.load("models/data/pendulum_std.npz"))
d["c"] = np.ones(d["r"].shape, dtype=np.float32)
np.savez_compressed("models/data/pendulum_cont.npz", **d)
print({k: v.shape for k, v in d.items()})
