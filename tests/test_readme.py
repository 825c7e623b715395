"""README.rst is what a new user reads first, docs/ the rest: every page must render,
the README must give the two commands and link every page, and the configuration
table of docs/operations.rst must document every setting of the code."""

import re
from pathlib import Path

import docutils.core
import docutils.utils
import pytest

from soapservice.config import load_settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.rst"
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.rst"))


def render(path: Path) -> None:
    docutils.core.publish_doctree(
        path.read_text(encoding="utf-8"), source_path=str(path),
        settings_overrides={"halt_level": docutils.utils.Reporter.WARNING_LEVEL,
                            "report_level": 5})


@pytest.mark.parametrize("path", [README, *PAGES], ids=lambda p: p.name)
def test_page_renders_without_warnings(path):
    render(path)


def test_readme_is_short_and_gives_the_two_commands():
    text = README.read_text()
    assert re.search(r"^\s+make run\b", text, re.M)
    assert re.search(r"^\s+make test\b", text, re.M)
    assert len(text.splitlines()) <= 200


def test_readme_links_every_page_and_every_link_resolves():
    linked = set(re.findall(r"<(docs/[a-z_]+\.rst)(?:#[a-z-]+)?>`_", README.read_text()))
    assert linked == {f"docs/{p.name}" for p in PAGES}
    for page in PAGES:  # links between pages name files that exist
        for target in re.findall(r"<([a-z_]+\.rst)(?:#[a-z-]+)?>`_", page.read_text()):
            assert (DOCS / target).exists(), (page.name, target)


def test_every_configuration_variable_is_in_the_configuration_table():
    source = (ROOT / "soapservice" / "config.py").read_text()
    text = (DOCS / "operations.rst").read_text()
    start = text.index("Configuration\n=============\n")
    table = re.search(r"\n(=+  =+  =+)\n.*?\n\1\n.*?\n\1\n", text[start:], re.S).group(0)
    names = set(re.findall(r'"(SOAPSERVICE_[A-Z_0-9]+)"', source))
    assert names, "no variables found in config.py"
    documented = set(re.findall(r"^``(SOAPSERVICE_[A-Z_0-9]+)``", table, re.M))
    missing = sorted(names - documented)
    assert not missing, f"settings missing from the configuration table: {missing}"
    load_settings({})  # the defaults load
