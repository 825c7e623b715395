"""README.rst is what a new user reads first: it must render, and its two commands and
configuration table must match the code."""

import re
from pathlib import Path

import docutils.core
import docutils.utils

from soapservice.config import load_settings

README = Path(__file__).resolve().parent.parent / "README.rst"


def test_readme_renders_without_warnings():
    docutils.core.publish_doctree(
        README.read_text(), settings_overrides={"halt_level": docutils.utils.Reporter.WARNING_LEVEL,
                                                "report_level": 5})


def test_readme_gives_the_two_commands():
    text = README.read_text()
    assert re.search(r"^\s+make run\b", text, re.M)
    assert re.search(r"^\s+make test\b", text, re.M)


def test_every_configuration_variable_is_documented():
    source = (README.parent / "soapservice" / "config.py").read_text()
    documented = README.read_text()
    names = set(re.findall(r'"(SOAPSERVICE_[A-Z_0-9]+)"', source))
    assert names, "no variables found in config.py"
    missing = sorted(n for n in names if n not in documented)
    assert not missing, f"undocumented settings: {missing}"
    load_settings({})  # the defaults load
