#!/usr/bin/env python3
"""Reference values for vic's special functions and the Gamma, Beta, StudentT, Poisson,
LogNormal and MultivariateNormal families, from scipy (float64).

Writes tests/fixtures/families_scipy.json, which src/runtime/tests/special.rs and
tests/families.rs read; the tests need no scipy (CI has only python3). Regenerate with
    python3 -m venv /tmp/v && /tmp/v/bin/pip install scipy numpy
    /tmp/v/bin/python scripts/families_scipy.py
and review the diff: every number here is scipy's, none is vic's.
"""
import json
import os

import numpy as np
from scipy import special, stats

out = {}
xs = [0.01, 0.1, 0.5, 1.0, 1.5, 2.5, 7.3, 20.0, 150.0]
out["lgamma"] = [[x, float(special.gammaln(x))] for x in xs]
out["digamma"] = [[x, float(special.digamma(x))] for x in xs]
out["trigamma"] = [[x, float(special.polygamma(1, x))] for x in xs]
out["gammainc"] = [
    [a, x, float(special.gammainc(a, x))]
    for a in [0.1, 0.5, 1.0, 3.0, 30.0]
    for x in [0.001, 0.2, 1.0, 4.0, 35.0]
]
out["gammaincinv"] = [
    [a, p, float(special.gammaincinv(a, p))]
    for a in [0.1, 0.5, 1.0, 3.0, 30.0]
    for p in [1e-6, 0.01, 0.3, 0.5, 0.9, 0.999]
]
out["betainc"] = [
    [a, b, x, float(special.betainc(a, b, x))]
    for a, b in [(0.3, 0.7), (1.0, 1.0), (2.0, 5.0), (0.5, 0.5), (20.0, 3.0)]
    for x in [0.001, 0.2, 0.5, 0.9, 0.999]
]
out["betaincinv"] = [
    [a, b, p, float(special.betaincinv(a, b, p))]
    for a, b in [(0.3, 0.7), (1.0, 1.0), (2.0, 5.0), (0.5, 0.5), (20.0, 3.0)]
    for p in [1e-5, 0.1, 0.5, 0.9, 0.99999]
]
# Family log-densities at points: [params..., x, logpdf].
out["gamma_logpdf"] = [
    [c, r, x, float(stats.gamma(c, scale=1.0 / r).logpdf(x))]
    for c, r in [(0.5, 1.0), (2.0, 3.0), (9.0, 0.5)]
    for x in [0.05, 0.7, 4.0]
]
out["beta_logpdf"] = [
    [a, b, x, float(stats.beta(a, b).logpdf(x))]
    for a, b in [(0.5, 0.5), (2.0, 5.0), (7.0, 1.5)]
    for x in [0.02, 0.4, 0.95]
]
out["student_t_logpdf"] = [
    [df, loc, scale, x, float(stats.t(df, loc, scale).logpdf(x))]
    for df, loc, scale in [(1.0, 0.0, 1.0), (3.5, -1.0, 0.5), (30.0, 2.0, 2.0)]
    for x in [-3.0, 0.1, 2.5]
]
out["poisson_logpmf"] = [
    [rate, k, float(stats.poisson(rate).logpmf(k))]
    for rate in [0.3, 4.0, 55.0]
    for k in [0, 1, 7, 60]
]
out["lognormal_logpdf"] = [
    [loc, scale, x, float(stats.lognorm(s=scale, scale=np.exp(loc)).logpdf(x))]
    for loc, scale in [(0.0, 1.0), (-0.5, 0.3), (1.2, 2.0)]
    for x in [0.1, 1.0, 6.0]
]
# Entropies: [params..., H].
out["gamma_entropy"] = [[c, r, float(stats.gamma(c, scale=1.0 / r).entropy())]
                        for c, r in [(0.5, 1.0), (2.0, 3.0), (9.0, 0.5)]]
out["beta_entropy"] = [[a, b, float(stats.beta(a, b).entropy())]
                       for a, b in [(0.5, 0.5), (2.0, 5.0), (7.0, 1.5)]]
out["student_t_entropy"] = [[df, scale, float(stats.t(df, 0.0, scale).entropy())]
                            for df, scale in [(1.0, 1.0), (3.5, 0.5), (30.0, 2.0)]]
out["lognormal_entropy"] = [[loc, scale, float(stats.lognorm(s=scale, scale=np.exp(loc)).entropy())]
                            for loc, scale in [(0.0, 1.0), (-0.5, 0.3), (1.2, 2.0)]]


def kl_quad(q, p, lo, hi):
    from scipy import integrate
    f = lambda x: q.pdf(x) * (q.logpdf(x) - p.logpdf(x))
    return float(integrate.quad(f, lo, hi, limit=500, epsabs=1e-13, epsrel=1e-11)[0])


# KLs by numerical integration of scipy's densities: [q params..., p params..., KL].
out["gamma_kl"] = [
    [cq, rq, cp, rp, kl_quad(stats.gamma(cq, scale=1 / rq), stats.gamma(cp, scale=1 / rp), 0, np.inf)]
    for (cq, rq, cp, rp) in [(2.0, 1.0, 3.0, 0.5), (0.7, 2.0, 1.5, 1.0), (9.0, 3.0, 9.0, 3.0)]
]
out["beta_kl"] = [
    [aq, bq, ap, bp, kl_quad(stats.beta(aq, bq), stats.beta(ap, bp), 0, 1)]
    for (aq, bq, ap, bp) in [(2.0, 3.0, 1.0, 1.0), (0.8, 1.5, 3.0, 2.0), (5.0, 5.0, 5.0, 5.0)]
]
out["lognormal_kl"] = [
    [lq, sq, lp, sp, kl_quad(stats.lognorm(s=sq, scale=np.exp(lq)), stats.lognorm(s=sp, scale=np.exp(lp)), 0, np.inf)]
    for (lq, sq, lp, sp) in [(0.0, 1.0, 0.5, 2.0), (-0.3, 0.4, 0.1, 0.6)]
]
# MultivariateNormal: loc, scale_tril (row-major), x, logpdf; KL(q ‖ p) in closed form (float64).
L1 = np.array([[1.0, 0.0, 0.0], [0.5, 0.8, 0.0], [-0.3, 0.2, 1.5]])
L2 = np.array([[2.0, 0.0, 0.0], [-0.4, 0.6, 0.0], [0.1, 0.9, 0.7]])
m1 = np.array([0.1, -0.2, 0.3])
m2 = np.array([1.0, 0.0, -1.0])
mvn = []
for x in [[0.0, 0.0, 0.0], [1.0, -2.0, 0.5]]:
    mvn.append([m1.tolist(), L1.flatten().tolist(), x, float(stats.multivariate_normal(m1, L1 @ L1.T).logpdf(x))])
out["mvn_logpdf"] = mvn
S1, S2 = L1 @ L1.T, L2 @ L2.T
S2i = np.linalg.inv(S2)
kl = 0.5 * (np.trace(S2i @ S1) + (m2 - m1) @ S2i @ (m2 - m1) - 3 + np.log(np.linalg.det(S2) / np.linalg.det(S1)))
out["mvn_kl"] = [[m1.tolist(), L1.flatten().tolist(), m2.tolist(), L2.flatten().tolist(), float(kl)]]
out["mvn_entropy"] = [[L1.flatten().tolist(), float(stats.multivariate_normal(m1, S1).entropy())]]

path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "families_scipy.json")
with open(path, "w") as f:
    # One key per line: a reviewable diff.
    f.write("{\n" + ",\n".join(f' "{k}": {json.dumps(v)}' for k, v in out.items()) + "\n}\n")
print("wrote", os.path.normpath(path))
