"""Training from Python is `vic run`: the same metrics, parameters and run directory."""

import json
import signal
import subprocess

import numpy as np
import pytest

import vic

STEPS, SEED = 20, 3


def strip_time(rows):
    return [{k: v for k, v in r.items() if k != "time"} for r in rows]


def read_metrics(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, run_vic):
    out = tmp_path_factory.mktemp("cli") / "ssm"
    run_vic("run", "models/ssm.vmodel", "--steps", STEPS, "--seed", SEED, "--out", out)
    return out


@pytest.fixture(scope="module")
def fit(root):
    seen = []
    m = vic.Model.from_file(root / "models" / "ssm.vmodel")
    f = m.fit(steps=STEPS, seed=SEED, callback=lambda step, metrics: seen.append((step, metrics)))
    return f, seen


def params_json(run_vic, run):
    return json.loads(run_vic("params", run, "--format", "json"))


def test_history_equals_metrics_jsonl_of_vic_run(fit, cli_run):
    f, _ = fit
    cli = strip_time(read_metrics(cli_run / "metrics.jsonl"))
    ours = strip_time(f.history)
    assert ours == cli
    assert ours[-1]["final"] is True
    assert f.report["elbo"] == cli[-1]["elbo"]


def test_params_equal_vic_params(fit, cli_run, run_vic):
    f, _ = fit
    cli = params_json(run_vic, cli_run)
    assert sorted(f.params) == sorted(cli)
    for name, p in cli.items():
        a = f.params[name]
        assert a.dtype == np.float64 and list(a.shape) == p["shape"]
        assert a.ravel().tolist() == p["value"], name
        assert f.raw_params[name].ravel().tolist() == p["raw"], name


def test_callback_sees_every_step(fit):
    _, seen = fit
    assert [s for s, _ in seen] == list(range(1, STEPS + 1))
    step, metrics = seen[-1]
    assert metrics["step"] == step and "elbo" in metrics and "terms" in metrics


def test_save_writes_a_run_directory_the_cli_reads(fit, cli_run, tmp_path, run_vic):
    f, _ = fit
    d = tmp_path / "saved"
    f.save(d)
    for name in ("config.json", "checkpoint.safetensors", "metrics.jsonl", "model.vmodel"):
        assert (d / name).exists(), name
    assert params_json(run_vic, d) == params_json(run_vic, cli_run)
    cfg = json.loads((d / "config.json").read_text())
    cli_cfg = json.loads((cli_run / "config.json").read_text())
    for key in ("model", "steps", "train", "sequence_steps", "train_rows", "runtime"):
        assert cfg[key] == cli_cfg[key], key
    assert strip_time(read_metrics(d / "metrics.jsonl")) == strip_time(f.history)


def test_load_round_trip(fit, cli_run, tmp_path, run_vic):
    f, _ = fit
    d = tmp_path / "saved"
    f.save(d)
    g = vic.Fit.load(d)
    assert g.step == STEPS
    for name, a in f.params.items():
        assert np.array_equal(g.params[name], a)
    assert strip_time(g.history) == strip_time(f.history)
    assert g.evaluate(samples=5, seed=1) == f.evaluate(samples=5, seed=1)
    # A run directory of `vic run` loads too, and scores as `vic eval` does.
    h = vic.Fit.load(cli_run)
    ours = h.evaluate(samples=4, seed=0)
    cli = json.loads(run_vic("eval", "models/ssm.vmodel", "--params", cli_run, "--samples", 4, "--json"))
    assert ours["elbo"] == cli["elbo"] and ours["stderr"] == cli["stderr"]


def test_evaluate_on_given_arrays(fit, root):
    f, _ = fit
    d = np.load(root / "models" / "data" / "pendulum_std.npz")
    data = {"o": d["o"][:8], "a": d["a"][:8]}
    r = f.evaluate(data, samples=3)
    assert r["n"] == 8 * 3
    assert {t["label"] for t in r["terms"]} == set(f.term_labels)
    assert "evidence_note" in r  # no exact evidence for a nonlinear model
    assert r == f.evaluate({k: np.asfortranarray(v) for k, v in data.items()}, samples=3)


def test_exact_evidence_of_a_linear_gaussian_model(root):
    m = vic.Model.from_file(root / "models" / "lg_toy.vmodel")
    f = m.fit(steps=5, seed=0)
    r = f.evaluate(samples=4)
    assert "log_evidence" in r and "gap" in r, r.keys()


def test_out_writes_the_run_directory_live(root, tmp_path, cli_run):
    m = vic.Model.from_file(root / "models" / "ssm.vmodel")
    out = tmp_path / "live"
    f = m.fit(steps=STEPS, seed=SEED, out=out)
    assert strip_time(read_metrics(out / "metrics.jsonl")) == strip_time(f.history)
    with pytest.raises(vic.VicError) as info:
        m.fit(steps=STEPS, seed=SEED, out=out)
    assert info.value.code == "E095"
    m.fit(steps=2, seed=SEED, out=out, force=True)


def test_keyboard_interrupt_leaves_a_resumable_run(root, tmp_path, fit):
    full, _ = fit
    m = vic.Model.from_file(root / "models" / "ssm.vmodel")
    out = tmp_path / "interrupted"

    def interrupt(step, metrics):
        if step == 7:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        m.fit(steps=STEPS, seed=SEED, out=out, checkpoint_every=5, callback=interrupt)
    assert (out / "checkpoint.safetensors").exists()
    resumed = m.fit(steps=STEPS, seed=SEED, out=out, resume=True)
    assert resumed.step == STEPS
    assert resumed.history[-1]["final"] is True
    # The CLI continues it too.
    assert vic.Fit.load(out).step == STEPS


def test_callback_exception_stops_the_run(root):
    m = vic.Model.from_file(root / "models" / "ssm.vmodel")

    def boom(step, metrics):
        if step == 3:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        m.fit(steps=10, seed=0, callback=boom)


def test_control_problem_needs_no_data(root):
    m = vic.Model.from_file(root / "models" / "lqr.vmodel")
    f = m.fit(steps=3, batch=8, horizon=5)
    assert f.step == 3 and f.history[-1]["final"] is True


def test_sample_equals_vic_sample(cli_run, root, run_vic, tmp_path):
    h = vic.Fit.load(cli_run)
    d = np.load(root / "models" / "data" / "pendulum_std.npz")
    data = {"o": d["o"], "a": d["a"]}
    for extra, kw in (([], {}), (["--condition", 5, "--horizon", 30], {"condition": 5, "horizon": 30})):
        out = tmp_path / "draws.npz"
        run_vic("sample", "models/ssm.vmodel", "--params", cli_run, "--n", 6, "--seed", 2,
                "--out", out, *extra)
        cli = np.load(out)
        ours = h.sample(6, data=data, seed=2, **kw)
        assert sorted(ours) == sorted(cli.files)
        for k in cli.files:
            assert ours[k].dtype == np.float32 and ours[k].shape == cli[k].shape, k
            assert np.array_equal(ours[k], cli[k]), k


def test_sample_conditioned_on_arrays(fit, root):
    f, _ = fit
    d = np.load(root / "models" / "data" / "pendulum_std.npz")
    cond = {"o": d["o"][:4, :10], "a": d["a"][:4, :10]}
    draws = f.sample(n=16, condition=cond, horizon=50)
    assert draws["o"].shape == (16, 50, 3) and draws["s"].shape == (16, 50, 8)
    # Follows the posterior on the 10 given steps, then p open loop.
    with pytest.raises(vic.VicError) as info:
        f.sample(n=2, condition=60, horizon=50)
    assert info.value.code == "E092"
    assert "horizon" in info.value.help  # every error carries its advice


def test_training_releases_the_gil(root):
    import threading
    import time

    m = vic.Model.from_file(root / "models" / "ssm.vmodel")
    count = [0]
    done = threading.Event()

    def spin():
        while not done.is_set():
            count[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        t0 = time.perf_counter()
        m.fit(steps=60, seed=0, batch=64, eval_every=1000, progress=False)
        seconds = time.perf_counter() - t0
    finally:
        done.set()
        t.join()
    # The other thread ran while Rust trained (holding the GIL it would be starved).
    assert count[0] > 1000 * seconds, (count[0], seconds)


def test_resumed_run_ends_where_an_uninterrupted_one_does(root, tmp_path, fit):
    full, _ = fit
    m = vic.Model.from_file(root / "models" / "ssm.vmodel")
    out = tmp_path / "again"

    def interrupt(step, metrics):
        if step == 7:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        m.fit(steps=STEPS, seed=SEED, out=out, callback=interrupt)
    resumed = m.fit(steps=STEPS, seed=SEED, out=out, resume=True)
    assert strip_time(resumed.history) == strip_time(full.history)


def test_posterior_predictive_equals_vic_sample_posterior(cli_run, root, run_vic, tmp_path):
    # The reference is the CLI's .npz for the same run, data, counts and seed; bit for bit.
    h = vic.Fit.load(cli_run)
    for extra, kw in (([], {}), (["--one-step"], {"one_step": True})):
        out = tmp_path / "posterior.npz"
        run_vic("sample", "models/ssm.vmodel", "--params", cli_run, "--posterior", "--n", 3,
                "--draws", 7, "--seed", 5, "--out", out, *extra)
        cli = np.load(out)
        # The default data is the run's data file, as `vic sample` reads it; a path too.
        for data in (None, root / "models" / "data" / "pendulum_std.npz"):
            ours = h.posterior_predictive(data, n=3, draws=7, seed=5, **kw)
            assert sorted(ours) == sorted(cli.files)
            for k in cli.files:
                assert ours[k].dtype == np.float32 and ours[k].shape == cli[k].shape, k
                assert np.array_equal(ours[k], cli[k], equal_nan=True), k
        assert ours["o"].shape == (7, 3, 50, 3) and ours["o_data"].shape == (3, 50, 3)
        # The data beside the draws is the file's first sequences.
        d = np.load(root / "models" / "data" / "pendulum_std.npz")
        assert np.array_equal(ours["o_data"], d["o"][:3].astype(np.float32))
    with pytest.raises(vic.VicError) as info:
        h.posterior_predictive(n=3, draws=1)
    assert info.value.code == "E092"


def test_posterior_predictive_of_a_control_problem_is_refused(root):
    f = vic.Model.from_file(root / "models" / "lqr.vmodel").fit(steps=1, batch=4, horizon=5)
    with pytest.raises(vic.VicError) as info:
        f.posterior_predictive(n=2, draws=4)
    assert info.value.code == "E092"


def test_run_directory_has_the_files_of_vic_run(root, tmp_path, cli_run):
    # fit(out=) and save() write the files `vic run --out` writes (elbo.svg included), and
    # leave no lock behind; while a run holds the directory, another is refused (E094).
    m = vic.Model.from_file(root / "models" / "ssm.vmodel")
    cli_files = sorted(p.name for p in cli_run.iterdir())
    assert "elbo.svg" in cli_files and ".vic-run.lock" not in cli_files
    out = tmp_path / "live"
    f = m.fit(steps=STEPS, seed=SEED, out=out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == cli_files
    # The same run draws the same picture (vic::plot::CurveLog, fed as vic run's progress).
    assert (out / "elbo.svg").read_bytes() == (cli_run / "elbo.svg").read_bytes()
    saved = tmp_path / "saved"
    f.save(saved)
    assert sorted(p.name for p in saved.iterdir()) == cli_files
    # A loaded run saves its picture again.
    again = tmp_path / "again"
    vic.Fit.load(cli_run).save(again)
    assert sorted(p.name for p in again.iterdir()) == cli_files
    assert (again / "elbo.svg").read_bytes() == (cli_run / "elbo.svg").read_bytes()
    # The lock of a live process (this one's parent: alive, and not us) holds the directory.
    import os
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / ".vic-run.lock").write_text(f"{os.getppid()}\n")
    with pytest.raises(vic.VicError) as info:
        m.fit(steps=2, seed=SEED, out=busy, progress=False)
    assert info.value.code == "E094"
    # The CLI refuses the same directory with the same code.
    p = subprocess.run([run_vic_bin(), "run", "models/ssm.vmodel",
                        "--steps", "2", "--out", str(busy)], cwd=root, capture_output=True,
                       text=True)
    assert p.returncode == 2 and "E094" in p.stderr


def run_vic_bin():
    from conftest import _binary
    return _binary()
