"""ArviZ conversion, R-hat/ESS summary, report and the diagnose/sample commands."""

import json
import os

import numpy as np

from ebm_ppl import diagnostics


def test_rhat_detects_unmixed_chains_and_report_files(tmp_path):
    rng = np.random.default_rng(0)
    good = rng.standard_normal((4, 200, 3, 3))
    dt = diagnostics.to_datatree(
        good,
        {
            "log_density": rng.standard_normal((4, 200)),
            "step_size": np.ones(4),
            "is_divergent": np.zeros((4, 200), bool),
            "acceptance_rate": np.full((4, 200), 0.8),
        },
    )
    assert set(dt.children) >= {"posterior", "sample_stats"}
    assert dt["posterior"]["x"].dims == ("chain", "draw", "x_dim_0", "x_dim_1")
    s = diagnostics.write_report(dt, str(tmp_path))
    assert s["pixels"]["max_rhat"] < 1.03 and s["energy"]["rhat"] < 1.03 and s["divergences"] == 0
    for f in ("trace.png", "rank.png", "diagnostics.json"):
        assert os.path.getsize(tmp_path / f) > 0
    bad = good + np.arange(4)[:, None, None, None]  # chains stuck in different places
    sb = diagnostics.summarize(diagnostics.to_datatree(bad))
    assert sb["pixels"]["max_rhat"] > 1.5 and sb["pixels"]["min_ess_bulk"] < 50


def test_cli_sample_and_diagnose(tmp_path):
    from ebm_ppl.cli import main

    npz = str(tmp_path / "s.npz")
    assert (
        main(
            [
                "sample",
                "--target",
                "gauss:2",
                "--sampler",
                "hmc",
                "--chains",
                "2",
                "--steps",
                "60",
                "--n",
                "50",
                "--out",
                npz,
            ]
        )
        == 0
    )
    data = np.load(npz)
    assert data["samples"].shape == (50, 2) and data["chains"].shape == (2, 60, 2)
    assert main(["diagnose", npz, "--out", str(tmp_path / "d")]) == 0
    summary = json.load(open(tmp_path / "d" / "diagnostics.json"))
    assert "energy" in summary and "pixels" in summary
    assert main(["sample", "--target", "gauss:2", "--out", str(tmp_path / "x.txt")]) == 2
    assert main(["diagnose", str(tmp_path / "missing.npz"), "--out", str(tmp_path)]) == 2
