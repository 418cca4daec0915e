#!/usr/bin/env python3
"""Export scikit-learn's bundled 8x8 digits to models/data/digits.npz.

What it does
  Loads sklearn.datasets.load_digits() (the copy of the UCI optical digits test
  set shipped inside scikit-learn; no download), and writes
      x : (1797, 64) float32, pixel intensities / 16  -> values in [0, 1]
      y : (1797,)    int64,   digit labels 0..9
  in sklearn's row order, to models/data/digits.npz (numpy.savez_compressed).
  The pixel scaling matches the peer benchmarks' digits.npy
  (load_digits().data / 16, float32); pass --check PATH to compare against one.

How to rerun (from the crate root)
  pip install numpy scikit-learn
  python3 scripts/export_digits.py [--out models/data/digits.npz]
                                   [--check ../shared/bench/peers/data/digits.npy]
"""
import argparse
import os
import sys

import numpy as np
from sklearn.datasets import load_digits

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "data", "digits.npz"))
    ap.add_argument("--check", help="a (1797, 64) .npy to compare x against (values and order)")
    args = ap.parse_args()

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    assert x.shape == (1797, 64) and y.shape == (1797,)
    assert x.min() >= 0.0 and x.max() <= 1.0
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez_compressed(args.out, x=x, y=y)
    print(f"wrote {args.out}: x {x.shape} {x.dtype} in [{x.min()}, {x.max()}], "
          f"y {y.shape} {y.dtype} counts {np.bincount(y).tolist()}")

    if args.check:
        ref = np.load(args.check)
        print(f"check against {args.check}: shape {ref.shape} {ref.dtype}")
        if ref.shape != x.shape:
            print("  shape differs")
            return 1
        diff = np.abs(ref.astype(np.float64) - x.astype(np.float64))
        print(f"  max |diff| = {diff.max():.3g}, bitwise equal: {np.array_equal(ref, x)}, "
              f"rows differing: {int((diff.max(1) > 0).sum())}")
        if not np.array_equal(ref, x):
            # Same rows in another order?
            key = lambda a: {r.tobytes(): i for i, r in enumerate(a)}
            kr = key(ref)
            perm = [kr.get(r.tobytes(), -1) for r in x]
            print(f"  rows of ours found in ref: {sum(p >= 0 for p in perm)}/{len(perm)}; "
                  f"same order: {perm == list(range(len(perm)))}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
