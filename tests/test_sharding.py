"""Scale-out over devices (ebm_ppl.sharding, --devices).

The multi-device checks need XLA_FLAGS=--xla_force_host_platform_device_count=4 set before jax is
imported; this process has imported jax already, so they run in ONE subprocess
(tests/_sharding_checks.py, one start-up for all of them):

* train --devices 4 == --devices 1 (EBMPrior energies within 1e-3 relative; checkpoint loads);
* AIS on gmm:16:4 over 4 devices within 3 stderr of the exact log Z, JSON reports devices: 4,
  the estimate and stderr equal the one-device run's and the stderr / ESS recomputed from the
  final weights;
* 4 chains on 4 devices: one chain per device (progressive, HMC, long-run, inverse problems),
  read from the arrays' shardings; 6 chains on 4 devices refused with a clear error;
* bits/dim with padding (10 examples over 4 devices) equals the one-device figure.

The in-process tests below cover the argument plumbing on one device.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import pytest

from ebm_ppl import sharding
from ebm_ppl.cli import main

HERE = os.path.dirname(os.path.abspath(__file__))


def test_multi_device_checks_in_a_subprocess(tmp_path):
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "_sharding_checks.py"), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    checks = {}
    for line in proc.stdout.splitlines():
        if line.startswith('{"check"'):
            d = json.loads(line)
            checks.setdefault(d["check"], d)
    assert {"devices", "chains", "ais", "bpd_solve", "train", "done"} <= set(checks), checks.keys()
    assert checks["devices"]["device_count"] == 4
    assert checks["train"]["max_rel_diff"] < 1e-3
    assert checks["chains"]["shard_shape"][0] == 1 and len(set(checks["chains"]["devices"])) == 4


def test_single_process_and_mesh_helpers():
    assert jax.process_count() == 1 and jax.process_index() == 0
    n = jax.device_count()
    mesh = sharding.device_mesh(n)
    assert sharding.num_devices(mesh) == n and sharding.num_devices(None) == 1
    assert sharding.mesh_from_arg(1) is None  # one device: the unsharded path
    with pytest.raises(ValueError, match="devices"):
        sharding.device_mesh(n + 1)
    x = jax.numpy.arange(5.0)
    xp, m = sharding.pad_batch(x, mesh)
    assert m == 5 and xp.shape[0] % n == 0 and float(xp[-1]) == 4.0
    assert sharding.to_host({"a": x})["a"].tolist() == [0, 1, 2, 3, 4]


def test_check_divisible_names_the_problem():
    mesh = sharding.device_mesh(1)

    class Fake:  # a 4-device mesh stand-in for the message
        devices = type("D", (), {"size": 4})()

    with pytest.raises(
        ValueError, match=r"AIS particles: 6 cannot be split evenly over 4 devices; use a multiple of 4"
    ):
        sharding.check_divisible(6, Fake(), "AIS particles")
    sharding.check_divisible(6, mesh, "anything")


def test_initialize_distributed_plumbing(monkeypatch):
    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
    info = sharding.initialize_distributed("10.0.0.1:1234", 2, 1)
    assert calls == [{"coordinator_address": "10.0.0.1:1234", "num_processes": 2, "process_id": 1}]
    assert info["process_count"] == 1  # the fake did not really start a cluster
    with pytest.raises(ValueError, match="process_id"):
        sharding.initialize_distributed("h:1", 2, 5)
    # the CLI options reach jax.distributed.initialize before the mesh is built
    from ebm_ppl.cli.common import resolve_mesh

    args = type("A", (), {"coordinator": "h:1", "num_processes": 1, "process_id": 0, "devices": 1})()
    mesh, n = resolve_mesh(args)
    assert mesh is None and n == 1
    assert calls[-1] == {"coordinator_address": "h:1", "num_processes": 1, "process_id": 0}


def test_cli_devices_errors(tmp_path, capsys):
    too_many = str(jax.device_count() + 1)
    rc = main(
        ["logz", "--target", "gauss:2", "--devices", too_many, "--samples", "8", "--out", str(tmp_path / "z.png")]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "--devices" in err and "Traceback" not in err
    rc = main(["sample", "--target", "gauss:2", "--devices", "0", "--out", str(tmp_path / "s.npz")])
    assert rc == 2 and "--devices must be >= 1" in capsys.readouterr().err


def test_one_device_json_reports_devices(tmp_path, capsys):
    rc = main(
        [
            "sample",
            "--target",
            "gauss:2",
            "--n",
            "4",
            "--steps",
            "2",
            "--devices",
            "1",
            "--out",
            str(tmp_path / "s.npz"),
            "--json",
        ]
    )
    assert rc == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["devices"] == 1
