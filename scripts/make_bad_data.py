#!/usr/bin/env python3
"""Generate the data-loader fixture corpus in tests/fixtures/data/.

One small file per loader fault (plus a few good files), used by
src/data/tests.rs. See tests/fixtures/data/README.md for the list of files,
the fault each one carries and the expected `vic::E1nn` code.

Rerun (needs numpy):  python3 scripts/make_bad_data.py [OUT_DIR]
OUT_DIR defaults to tests/fixtures/data next to this script's parent.
Output is deterministic in content (zip timestamps inside .npz may differ).

Specs the tests use:
  SEQ    : o timed size 3 Real, a timed size 1 Real, min_len 2
  STATIC : x static size 4 Binary, u static size 2 Unit,
           c static size 6 OneHot{groups 2, classes 3}
  CSV    : x static size 2 Real (columns x.0, x.1), y static size 1 Real (column y)
  NPY    : img static size 64 Unit
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "tests", "fixtures", "data")
rng = np.random.default_rng(0)
N, T = 4, 5


def seq(n=N, t=T):
    return {
        "o": rng.normal(size=(n, t, 3)).astype(np.float32),
        "a": rng.uniform(-2, 2, size=(n, t, 1)).astype(np.float64),
    }


def static(n=6):
    c = np.zeros((n, 2, 3), np.int64)
    for i in range(n):
        c[i, 0, i % 3] = 1
        c[i, 1, (i + 1) % 3] = 1
    return {
        "x": (rng.uniform(size=(n, 2, 2)) < 0.5).astype(np.uint8),
        "u": rng.uniform(size=(n, 2)).astype(np.float64),
        "c": c.reshape(n, 6),
    }


def save(name, compressed=False, **arrays):
    (np.savez_compressed if compressed else np.savez)(os.path.join(OUT, name), **arrays)


def write(name, data):
    with open(os.path.join(OUT, name), "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    # ---- good files ------------------------------------------------------
    d = seq()
    mask = np.ones((N, T), bool)
    mask[1, 3:] = False
    mask[3, 2:] = False
    d["o"][1, 3:] = np.nan  # NaN padding under mask == 0 is allowed
    save("good_seq.npz", compressed=True, **d, mask=mask,
         obs_mean=np.array([0.1, 0.2, 0.3], np.float32))
    save("good_static.npz", **static())
    write("good_static.csv", "id,x.1,y,x.0\n0,1.5,2,-1\n1, 2.5 ,\"3\",1e-3\n\n2,0,-4,7\n")
    np.save(os.path.join(OUT, "good_single.npy"),
            rng.uniform(size=(3, 8, 8)).astype(np.float32))

    # ---- E102 invalid format --------------------------------------------
    with open(os.path.join(OUT, "good_seq.npz"), "rb") as f:
        b = f.read()
    write("truncated.npz", b[: len(b) // 2])
    write("garbage.npz", bytes(rng.integers(0, 256, 300, dtype=np.uint8)))
    write("garbage.npy", b"this is not an npy file\x00\x01\x02")
    np.save(os.path.join(OUT, "truncated.npy"), rng.uniform(size=(3, 64)).astype(np.float32))
    with open(os.path.join(OUT, "truncated.npy"), "rb") as f:
        b = f.read()
    write("truncated.npy", b[:-100])
    write("binary.csv", b"x.0,x.1,y\n\x00\x00\xff\xfe,1,2\n")

    # ---- structural faults (SEQ spec) -----------------------------------
    d = seq(); del d["a"]; save("missing_array.npz", **d)
    d = seq(); d["o"] = d["o"][:, :, 0]; save("wrong_rank.npz", **d)
    d = seq(); d["o"] = rng.normal(size=(N, T, 4)).astype(np.float32); save("feature_size.npz", **d)
    d = seq(); d["a"] = d["a"][:3]; save("n_mismatch.npz", **d)
    d = seq(); d["a"] = rng.normal(size=(N, T + 1, 1)); save("t_mismatch.npz", **d)
    save("too_short.npz", **seq(t=1))
    d = seq(); d["o"][1, 2, 0] = np.nan; save("nan.npz", **d)
    write("inf.csv", "x.0,x.1,y\n1,2,3\n4,inf,6\n")
    d = seq(); d["o"] = d["o"].astype(np.complex64); save("complex.npz", **d)
    d = seq(); d["a"] = np.full((N, T, 1), "abc"); save("strings.npz", **d)
    d = seq(); save("mask_shape.npz", **d, mask=np.ones((N, T - 1), np.float32))
    m = np.ones((N, T), np.int64); m[2, 1] = 2
    save("mask_values.npz", **seq(), mask=m)
    m = np.ones((N, T), np.uint8); m[2] = 0
    save("mask_empty_row.npz", **seq(), mask=m)
    save("empty.npz", **seq(n=0))

    # ---- support faults (STATIC spec) -----------------------------------
    s = static(); s["x"] = s["x"].astype(np.float32); s["x"][2, 1, 0] = 0.3
    save("binary_bad.npz", **s)
    s = static(); s["c"][4, 2] = 1  # row 4: first group (already 1 at class 1) gets a second 1
    save("onehot_bad.npz", **s)
    s = static(); s["u"][3, 1] = 1.5
    save("unit_bad.npz", **s)

    # ---- CSV faults -------------------------------------------------------
    write("ragged.csv", "x.0,x.1,y\n1,2,3\n4,5\n7,8,9\n")
    write("non_numeric.csv", "x.0,x.1,y\n1,2,3\n4,five,6\n")
    print("wrote fixtures to", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
