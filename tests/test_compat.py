"""soapservice.compat: Spyne 2.14 imports on 3.12 and 3.13 only through it. These tests
fail when the shim stops working, and when it stops being needed (a Spyne release that
imports on its own: then delete soapservice/compat.py and this file)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SPYNE_USE = """
import spyne.util.six.moves
from spyne.util.six.moves.urllib.parse import quote
from spyne import Application, ServiceBase
from spyne.protocol.soap import Soap11, Soap12
from spyne.server.wsgi import WsgiApplication
import collections.abc
assert not collections.abc.__spec__.name.startswith("spyne"), collections.abc.__spec__
"""


def run(code: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter (nothing imported yet), from the checkout."""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_spyne_works_after_importing_soapservice():
    result = run("import soapservice\n" + SPYNE_USE)
    assert result.returncode == 0, result.stderr


def test_the_shim_is_needed_exactly_from_312_on():
    """Spyne alone fails on 3.12+ for want of six.moves; if it starts working, a fixed
    Spyne is installed and the shim should go."""
    result = run(SPYNE_USE)
    if sys.version_info >= (3, 12):
        assert result.returncode != 0, "Spyne imports without soapservice.compat: remove it"
        assert "No module named 'spyne.util.six.moves'" in result.stderr, result.stderr
    else:
        assert result.returncode == 0, result.stderr


def test_the_shim_is_applied_and_served_the_moves_only_where_needed():
    import soapservice.soap.apps  # noqa: F401  (imports Spyne)
    from soapservice import compat

    assert compat.APPLIED == (sys.version_info >= (3, 12))
    assert (compat.SpyneSixMovesFinder in sys.meta_path) == compat.APPLIED
    if compat.APPLIED:
        assert "spyne.util.six.moves" in compat.SpyneSixMovesFinder.served
    else:
        assert not compat.SpyneSixMovesFinder.served


def test_cgi_comes_from_legacy_cgi_on_313():
    """Python 3.13 has no ``cgi``; setup.cfg's marker installs legacy-cgi there only."""
    import importlib.metadata
    import importlib.util

    origin = Path(importlib.util.find_spec("cgi").origin)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    if sys.version_info >= (3, 13):
        assert stdlib not in origin.parents, origin
        assert importlib.metadata.version("legacy-cgi")
    else:
        assert stdlib in origin.parents, origin
