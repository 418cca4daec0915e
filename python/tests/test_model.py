"""Compiling models from Python: the derived ELBO in every format, and errors as exceptions."""

import json

import pytest

import vic

TOY = """model toy {
  observed x : real
  latent   z : real
  param m : real = 0.3
  p { z ~ Normal(0, 1)
      x ~ Normal(z, 1) }
  q { z ~ Normal(m, 1) }
}"""


def test_elbo_text_matches_the_cli(root, run_vic):
    m = vic.Model.from_file(root / "models" / "ssm.vmodel")
    assert m.name == "ssm"
    assert m.elbo() == run_vic("elbo", "models/ssm.vmodel")
    assert m.derivation() == run_vic("elbo", "models/ssm.vmodel", "--steps")
    assert m.elbo(format="latex") == run_vic("elbo", "models/ssm.vmodel", "--format", "latex")


def test_elbo_formats():
    m = vic.Model(TOY)
    assert "KL" in m.elbo()
    assert "\\mathrm{KL}" in m.elbo(format="latex") or "KL" in m.elbo(format="latex")
    doc = json.loads(m.elbo(format="json"))
    assert isinstance(doc, dict)
    assert m.graph().startswith("digraph")
    with pytest.raises(ValueError):
        m.elbo(format="html")


def test_model_error_has_code_span_and_every_diagnostic():
    src = "model x {\n  observed x : real\n  latent z : real\n  p { z ~ Normal(0, 1)\n      x ~ Normal(y, 1) }\n  q { z ~ Foo(0, 1) }\n}"
    with pytest.raises(vic.ModelError) as info:
        vic.Model(src, name="bad.vmodel")
    e = info.value
    assert isinstance(e, vic.VicError)
    assert len(e.diagnostics) >= 2, e.diagnostics
    codes = [d["code"] for d in e.diagnostics]
    assert e.code == codes[0] and e.code.startswith("E")
    for d in e.diagnostics:
        line, col = d["span"]
        assert line >= 1 and col >= 1
    # The unknown distribution is at line 6, column 11 (`Foo`).
    foo = [d for d in e.diagnostics if "Foo" in d["message"]]
    assert foo and foo[0]["span"] == (6, 11), e.diagnostics
    assert e.span == e.diagnostics[0]["span"]
    text = str(e)
    assert "bad.vmodel" in text and "vic::" + e.code in text and "Foo" in text


def test_model_error_code_matches_vic_check(tmp_path, vic_bin):
    import subprocess

    src = "model x {\n  observed x : real\n  latent z : real\n  p { z ~ Normal(0, 1)\n      x ~ Normal(y, 1) }\n  q { z ~ Foo(0, 1) }\n}"
    f = tmp_path / "bad.vmodel"
    f.write_text(src)
    p = subprocess.run([vic_bin, "check", str(f)], capture_output=True, text=True)
    assert p.returncode != 0
    with pytest.raises(vic.ModelError) as info:
        vic.Model.from_file(f)
    for d in info.value.diagnostics:
        assert "vic::" + d["code"] in p.stderr


def test_missing_file_is_a_coded_error(tmp_path):
    with pytest.raises(vic.VicError) as info:
        vic.Model.from_file(tmp_path / "nope.vmodel")
    assert info.value.code == "E090"
