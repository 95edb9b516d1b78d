import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from mlx_persona.cli import cli
from mlx_persona.core import blas

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the preload is Linux-only")


@linux_only
def test_child_env_preloads_openblas_and_opt_out_works(monkeypatch):
    env = blas.fast_blas_env({"PATH": "/usr/bin"})
    assert "libopenblas" in env["LD_PRELOAD"]
    code = "from mlx_persona.core.blas import fast_blas_active; import mlx.core; print(fast_blas_active())"
    out = subprocess.run([sys.executable, "-c", code], env=blas.fast_blas_env(), capture_output=True, text=True)
    assert out.stdout.strip() == "True", out.stderr
    monkeypatch.setenv(blas.OPT_OUT_VAR, "0")
    assert "LD_PRELOAD" not in blas.fast_blas_env({"PATH": "/usr/bin"})


@linux_only
def test_cli_reexecs_itself_with_fast_blas():
    env = {k: v for k, v in blas.fast_blas_env().items() if k not in ("LD_PRELOAD", "MLX_PERSONA_BLAS_REEXEC")}
    proc = subprocess.run(
        [sys.executable, "-m", "mlx_persona.cli", "doctor", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["fast BLAS"]["value"] == "active"
    gflops = float(checks["matmul 2048² float32"]["value"].split()[0])
    assert gflops > 0


def test_doctor_reports_a_missing_package_with_a_fix(monkeypatch):
    import mlx_persona.doctor as doctor

    real = doctor._version
    monkeypatch.setattr(doctor, "_version", lambda d: None if d == "mlx-lm" else real(d))
    res = CliRunner().invoke(cli, ["doctor", "--no-bench"])
    assert res.exit_code == 1
    assert "mlx-lm" in res.output and "pip install" in res.output
