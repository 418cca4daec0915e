"""Write the data of the closed-form reference models (design brief, "References"):

- models/data/lg_toy.npz: the single point x = 1 for p(z)=N(0,1), p(x|z)=N(z,1)
  (log p(x) = -1.515512).
- models/data/lgssm.npz: the sequence x = [1, -0.5, 0.3] for the linear-Gaussian SSM
  z1 ~ N(0,1), z_{t+1} = 0.5 z_t + N(0,1), x_t = z_t + N(0,1) (log p(x) = -4.273957).

Run from the repository root: python3 scripts/make_toy_data.py (needs numpy).
"""
import numpy as np

np.savez("models/data/lg_toy.npz", x=np.array([1.0], dtype=np.float32))
np.savez("models/data/lgssm.npz", x=np.array([[1.0, -0.5, 0.3]], dtype=np.float32))
print("wrote models/data/lg_toy.npz and models/data/lgssm.npz")
