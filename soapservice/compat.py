"""Lets Spyne 2.14 import on Python 3.12 and 3.13; runs before anything imports Spyne.

Why: Spyne 2.14.0, the newest release, bundles six 1.14 as ``spyne.util.six``. Its
``six.moves`` modules are served by a meta path importer that speaks only the old
``find_module``/``load_module`` protocol, which Python 3.12 no longer calls, so there
``import spyne`` fails with "No module named 'spyne.util.six.moves'". On 3.12+ this
module adds a finder with the current ``find_spec`` protocol for exactly the names that
bundled importer knows, and lets that importer load them (the same fix six 1.16 made
upstream). Nothing of Spyne is copied or changed; on 3.11 nothing is installed.

Spyne also imports ``cgi``, which Python 3.13 removed from the standard library: the
``legacy-cgi`` package provides it, a dependency for 3.13+ only (setup.cfg's marker).

Imported first by ``soapservice/__init__.py``. tests/test_compat.py fails when the shim
stops working, and when a Spyne release no longer needs it (then delete this module).
"""

from __future__ import annotations

import importlib.util
import sys

SIX = "spyne.util.six"
NEEDED = sys.version_info >= (3, 12)


class SpyneSixMovesFinder:
    """A ``find_spec`` finder and loader for ``spyne.util.six.moves[.*]``, delegating
    the loading to the bundled six's own importer (``spyne.util.six._importer``)."""

    served: set[str] = set()  # names this finder answered (tests/test_compat.py reads it)
    _original_specs: dict[str, object] = {}

    @staticmethod
    def _importer():
        return getattr(sys.modules.get(SIX), "_importer", None)

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if not fullname.startswith(SIX + ".moves"):
            return None
        importer = cls._importer()
        if importer is None or fullname not in importer.known_modules:
            return None
        return importlib.util.spec_from_loader(fullname, cls,
                                               is_package=importer.is_package(fullname))

    @classmethod
    def create_module(cls, spec):
        module = cls._importer().load_module(spec.name)
        # A "moved" name resolves to a real module (moves.collections_abc is
        # collections.abc): the import system is about to overwrite its __spec__.
        cls._original_specs[spec.name] = getattr(module, "__spec__", None)
        return module

    @classmethod
    def exec_module(cls, module):
        original = cls._original_specs.pop(module.__spec__.name, None)
        cls.served.add(module.__spec__.name)
        if original is not None:
            module.__spec__ = original


def install() -> bool:
    """Add the finder on Python 3.12+ (once); True when it is in place."""
    if not NEEDED:
        return False
    if SpyneSixMovesFinder not in sys.meta_path:
        sys.meta_path.append(SpyneSixMovesFinder)
    return True


APPLIED = install()
