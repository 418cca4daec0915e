"""numpy arrays in: dtypes, memory orders and masks, validated as data files are."""

import subprocess

import numpy as np
import pytest

import vic

STATIC = """model lin {
  observed x : real[2]
  latent   z : real
  p { z ~ Normal(0, 1)
      x ~ Normal(z, 1) }
  q { z ~ Normal(0, 1) }
}"""

SEQ = """model seq {
  observed y[t] : real
  latent   s[t] : real
  init s[0] = 0
  p { s[1] ~ Normal(0, 1)
      s[t] ~ Normal(s[t-1], 1)
      y[t] ~ Normal(s[t], 1) }
  q { s[1] ~ Normal(y[1], 1)
      s[t] ~ Normal(y[t], 1) }
}"""


def fit_elbo(m, data, **kw):
    fit = m.fit(data, steps=2, batch=4, seed=1, holdout=0.0, **kw)
    return fit.history[-1]["elbo"]


@pytest.fixture(scope="module")
def static():
    return vic.Model(STATIC)


@pytest.fixture(scope="module")
def seq():
    return vic.Model(SEQ)


def test_dtypes_and_orders_give_the_same_fit(static):
    x = np.random.default_rng(0).normal(size=(16, 2))
    ref = fit_elbo(static, {"x": x.astype(np.float32)})
    for a in (x.astype(np.float64), np.asfortranarray(x.astype(np.float32)), np.asfortranarray(x)):
        assert fit_elbo(static, {"x": a}) == ref
    # A non-contiguous view is read in logical order too.
    wide = np.zeros((16, 4), np.float32)
    wide[:, ::2] = x
    assert fit_elbo(static, {"x": wide[:, ::2]}) == ref
    # Integers convert as the file readers convert them.
    ints = np.arange(32).reshape(16, 2)
    assert fit_elbo(static, {"x": ints}) == fit_elbo(static, {"x": ints.astype(np.float32)})


def test_fit_on_arrays_equals_fit_on_the_same_npz(static, tmp_path):
    x = np.random.default_rng(1).normal(size=(16, 2)).astype(np.float32)
    f = tmp_path / "d.npz"
    np.savez(f, x=x)
    assert fit_elbo(static, {"x": x}) == fit_elbo(static, str(f))


def test_data_errors_have_the_codes_of_files(static, seq):
    cases = [
        ({}, "E103"),  # missing array
        ({"x": np.zeros((4,))}, "E104"),  # rank
        ({"x": np.zeros((4, 3))}, "E105"),  # feature size
        ({"x": np.zeros((0, 2))}, "E114"),  # empty
        ({"x": np.array([[0.0, np.nan]] * 4)}, "E109"),  # NaN
        ({"x": np.zeros((4, 2), dtype=np.complex64)}, "E110"),  # dtype
    ]
    for data, code in cases:
        with pytest.raises(vic.DataError) as info:
            static.fit(data, steps=1)
        assert info.value.code == code, (data, str(info.value))
        assert "vic::" + code in str(info.value)
    with pytest.raises(vic.DataError) as info:
        seq.fit({"y": np.zeros((4, 5)), "mask": np.full((4, 5), 2.0)}, steps=1)
    assert info.value.code == "E112"
    with pytest.raises(vic.DataError) as info:
        seq.fit({"y": np.zeros((4, 5)), "mask": np.zeros((4, 5))}, steps=1)
    assert info.value.code == "E113"


def test_masked_steps_are_exempt_and_padding_is_harmless(seq):
    rng = np.random.default_rng(2)
    y = rng.normal(size=(8, 6))
    mask = np.ones((8, 6))
    mask[:, 4:] = 0
    padded = y.copy()
    padded[:, 4:] = np.nan  # NaN padding where mask == 0 is accepted
    a = fit_elbo(seq, {"y": padded, "mask": mask})
    b = fit_elbo(seq, {"y": np.where(mask > 0, y, 0.0), "mask": mask.astype(bool)})
    assert a == b


def test_a_model_without_its_data_file_asks_for_data(static):
    with pytest.raises(vic.DataError) as info:
        static.fit(steps=1)
    assert info.value.code == "E092"


def test_bad_options_are_flag_errors(static):
    x = {"x": np.zeros((4, 2))}
    for kw in ({"lr": -1.0}, {"steps": 0}, {"holdout": 1.5}, {"batch": 0}):
        with pytest.raises(vic.VicError) as info:
            static.fit(x, **kw)
        assert info.value.code == "E092", kw


@pytest.mark.parametrize("family,lik,ty,bad", [
    ("Poisson", "Poisson(exp(z))", "real[2]", -1.0),
    ("Poisson", "Poisson(exp(z))", "real[2]", 2.5),
    ("Gamma", "Gamma(exp(z), 1)", "real[2]", 0.0),
    ("LogNormal", "LogNormal(z, 1)", "real[2]", -3.0),
    ("Beta", "Beta(exp(z), 1)", "unit[2]", 1.0),
])
def test_values_outside_a_likelihoods_support_are_e111(family, lik, ty, bad, tmp_path,
                                                        run_vic, root):
    src = f"""model fam {{
  observed x : {ty}
  latent   z : real
  p {{ z ~ Normal(0, 1)
      x ~ {lik} }}
  q {{ z ~ Normal(0, 1) }}
}}"""
    m = vic.Model(src)
    x = np.full((4, 2), 0.5 if family == "Beta" else 1.0)
    x[2, 1] = bad
    with pytest.raises(vic.DataError) as info:
        m.fit({"x": x}, steps=1)
    e = info.value
    assert e.code == "E111" and e.array == "x"
    assert f"{family}-observed" in e.message and "[2, 1]" in e.message
    assert e.help
    # The data file gives the same code (shared with `vic run`'s loader).
    np.savez(tmp_path / "bad.npz", x=x)
    (tmp_path / "fam.vmodel").write_text(src)
    p = subprocess.run([_vic(), "run", str(tmp_path / "fam.vmodel"), "--data",
                        str(tmp_path / "bad.npz"), "--steps", "1", "--out",
                        str(tmp_path / "run")], capture_output=True, text=True)
    assert p.returncode == 1 and "vic::E111" in p.stderr
    x[2, 1] = 0.5 if family == "Beta" else 1.0
    m.fit({"x": x}, steps=1)  # in the support: trains


def _vic():
    from conftest import _binary
    return _binary()
