"""Deployment as an operator meets it: the wheel installs and serves from a clean venv
(package data included); the systemd unit verifies with its hardening; the Dockerfile
lints clean and the compose example wires PostgreSQL, one API process and two workers.
No container engine runs in the test environment: the image itself is not built here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, free_port, require_tool

SOURCE_FILES = ("setup.py", "setup.cfg", "README.rst")


def _tool(name: str) -> str:
    """A tool installed beside this interpreter (the test extra), else on PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else require_tool(name)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel .`` of a copy of the source (the checkout stays clean), no deps."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCE_FILES:
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "soapservice", src / "soapservice",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out),
                    str(src)], check=True, timeout=300, capture_output=True)
    [built] = out.glob("soapservice-*.whl")
    return built


@pytest.mark.server  # builds the wheel (pip, ~9 s), shared with the install test below
def test_the_wheel_carries_the_package_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("soapservice/web/templates/demo.html", "soapservice/web/templates/page.html",
                   "soapservice/web/static/site.css", "soapservice/web/static/demo.js"):
        assert needed in names
    assert not any(n.startswith(("tests/", "bench/")) for n in names)


@pytest.mark.slow
@pytest.mark.server  # serves from the installed wheel
def test_the_wheel_installs_and_serves_from_a_clean_venv(wheel, tmp_path):
    """A fresh venv with the wheel installed (its dependencies taken from this test
    environment's site-packages, to stay offline and quick), started from a directory
    without the source: it answers the health check, the WSDL, the demo page and its
    static files, and it imports soapservice from the venv, not from the checkout."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    # Dependencies only: a path line in a .pth file does not run that directory's own
    # .pth files, so this environment's editable soapservice stays out.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, timeout=300,
                   capture_output=True)
    where = subprocess.run([python, "-c", "import soapservice; print(soapservice.__file__)"],
                           check=True, capture_output=True, text=True, cwd=tmp_path).stdout
    assert where.startswith(str(venv))

    port = free_port()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    # Configured by a file alone, as `serve --config` on a fresh machine.
    config = run_dir / "soapservice.toml"
    config.write_text(f'port = {port}\ndatabase_url = "sqlite:///{run_dir / "store.db"}"\n')
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUNBUFFERED": "1"}
    log = run_dir / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([venv / "bin" / "soapservice", "serve", "--config", config],
                                cwd=run_dir, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while f"listening on {base}/" not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert requests.get(base + "/healthz", timeout=30).status_code == 200
        wsdl = requests.get(base + "/soap?wsdl", timeout=30)
        assert wsdl.status_code == 200 and b"CreateWebHook" in wsdl.content
        demo = requests.get(base + "/demo", timeout=30)
        assert demo.status_code == 200 and "CreateWebHook" in demo.text
        css = re.search(r'href="([^"]+\.css)"', demo.text).group(1)
        assert requests.get(base + css, timeout=30).status_code == 200
        proc.terminate()
        assert proc.wait(timeout=30) == 0  # SIGTERM drains and exits cleanly
        assert (run_dir / "store.db").exists()  # the store the file named
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


UNIT = ROOT / "deploy" / "soapservice.service"


def test_the_systemd_unit_verifies_with_its_hardening(tmp_path):
    analyze = require_tool("systemd-analyze")
    text = UNIT.read_text()
    for option in ("DynamicUser=yes", "ProtectSystem=strict", "StateDirectory=soapservice",
                   "NoNewPrivileges=yes", "KillSignal=SIGTERM"):
        assert re.search(rf"^{re.escape(option)}$", text, re.M), option
    # verify wants the ExecStart binary to exist: point it at this environment's.
    unit = tmp_path / "soapservice.service"
    unit.write_text(text.replace("/opt/soapservice/bin/soapservice",
                                 str(Path(sys.executable).parent / "soapservice")))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                            timeout=60)
    # verify exits 0 on unknown keys and bad values too, but names them.
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
    security = subprocess.run([analyze, "security", "--offline=yes", str(unit)],
                              capture_output=True, text=True, timeout=60)
    score = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout)
    assert score and float(score.group(1)) <= 2.0, security.stdout[-2000:]


def test_the_dockerfile_lints_clean_and_runs_as_a_non_root_user():
    dockerfile = ROOT / "Dockerfile"
    text = dockerfile.read_text()
    assert re.search(r"^FROM python:3\.\d+-slim$", text, re.M)
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert 'VOLUME ["/var/lib/soapservice"]' in text
    assert "/healthz" in re.search(r"^HEALTHCHECK .*(?:\n .*)*", text, re.M).group(0)
    assert re.search(r'^ENTRYPOINT \["soapservice"\]\nCMD \["serve"\]$', text, re.M)
    result = subprocess.run([_tool("hadolint"), "--no-color", str(dockerfile)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_example_runs_one_api_and_two_workers_on_postgresql():
    import yaml
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["api"]["command"] == ["serve", "--no-delivery"]
    workers = [s for s in services.values() if s.get("command") == ["worker"]]
    assert len(workers) == 2
    for service in [services["api"], *workers]:
        url = service["environment"]["SOAPSERVICE_DATABASE_URL"]
        assert url.startswith("postgresql://") and "@postgres:" in url
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["build"]["context"] == ".."
    assert services["postgres"]["image"].startswith("postgres:")
    # Each worker serves /healthz on its metrics port, where the image's check looks.
    assert all(w["environment"]["SOAPSERVICE_METRICS_PORT"] for w in workers)
