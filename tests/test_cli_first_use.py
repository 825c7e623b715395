"""The command line on first use: it says which store it opened, never creates one to
read from, fails loudly for unknown accounts and unusable stores (one line), asks before
removing an account; and the package installs without setuptools warnings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import PASSWORD, ROOT, free_port, soapservice

pytestmark = pytest.mark.server


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOAPSERVICE_")}
    env.update(extra)
    return env


def _run(*args, cwd, env=None, input=None):
    return subprocess.run([sys.executable, "-m", "soapservice", *args], cwd=cwd,
                          env=env or _env(PYTHONPATH=str(ROOT)), input=input,
                          capture_output=True, text=True, timeout=120)


def test_read_only_commands_never_create_a_store(tmp_path):
    for args in (("notifications", "--account", "alice"), ("account", "list")):
        proc = _run(*args, cwd=tmp_path)
        assert proc.returncode == 1, proc
        assert proc.stderr.strip() == (
            f"soapservice: no store at {tmp_path / 'soapservice.db'} (SQLite): start "
            "`soapservice serve` here first, or set SOAPSERVICE_DATABASE_URL to the store "
            "that serve uses")
    assert list(tmp_path.iterdir()) == []


def test_a_new_store_is_announced_and_unknown_accounts_name_it(tmp_path):
    proc = _run("emit", "--account", "alice", "optin_finalized", "{}", cwd=tmp_path)
    where = f"{tmp_path / 'soapservice.db'} (SQLite)"
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"soapservice: creating a new store at {where}",
                                        f"soapservice: unknown account 'alice' in {where}"]
    proc = _run("notifications", "--account", "alice", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"soapservice: no account 'alice' in {where}"


def test_account_remove_asks_first(tmp_path):
    env = _env(PYTHONPATH=str(ROOT), SOAPSERVICE_DATABASE_URL=f"sqlite:///{tmp_path}/s.db")
    assert _run("account", "add", "alice", cwd=tmp_path, env=env,
                input=PASSWORD + "\n").returncode == 0
    refused = _run("account", "remove", "alice", cwd=tmp_path, env=env)
    assert refused.returncode == 1
    assert "Not confirmed: add --yes" in refused.stderr
    assert _run("account", "list", cwd=tmp_path, env=env).stdout.startswith("alice\t")
    removed = _run("account", "remove", "alice", "--yes", cwd=tmp_path, env=env)
    assert removed.returncode == 0 and removed.stdout == "account alice removed\n"
    assert _run("account", "list", cwd=tmp_path, env=env).stdout == ""


@pytest.mark.parametrize(("url", "says"), [
    ("mysql://u@127.0.0.1/db", "must be sqlite:///path or postgresql://"),
    (f"postgresql://postgres@127.0.0.1:{free_port()}/x", "Connection refused"),
    ("sqlite:////proc/no-such-dir/s.db", "unable to open database file"),
])
@pytest.mark.parametrize("command", [("emit", "--account", "a", "optin_finalized", "{}"),
                                     ("serve",)])
def test_store_failures_are_one_line(tmp_path, url, says, command):
    proc = _run(*command, cwd=tmp_path, env=_env(
        PYTHONPATH=str(ROOT), SOAPSERVICE_DATABASE_URL=url, SOAPSERVICE_PORT="0"))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if "creating a new store" not in line]
    assert len(errors) == 1 and errors[0].startswith("soapservice: cannot open the store ")
    assert says in errors[0]


def test_make_account_passes_the_email():
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    dry = subprocess.run([make, "-n", "-C", str(ROOT), "account", "NAME=alice",
                          "EMAIL=alice@example.com"], capture_output=True, text=True,
                         timeout=60)
    assert "soapservice account add 'alice' --email 'alice@example.com'" in dry.stdout


@pytest.mark.slow
def test_the_package_builds_without_setuptools_warnings(tmp_path):
    """The first install builds the package with a current setuptools (pip's build
    isolation): nothing it says may be a warning."""
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv*", ".git", "*.egg-info", "__pycache__", "*.db*", "build"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w",
                            str(tmp_path / "out"), str(source)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    log = built.stdout + built.stderr
    assert "_Warning" not in log and "SetuptoolsDeprecationWarning" not in log, log


def test_notifications_of_a_known_account_without_any(make_server):
    srv = make_server()
    listed = soapservice("notifications", "--account", "alice", env=srv.env)
    assert listed.returncode == 0 and listed.stdout == ""
