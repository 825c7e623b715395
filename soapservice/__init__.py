"""soapservice: a self-hosted webhook sender with the legacy platform's SOAP API."""

# First, before any submodule imports Spyne: makes Spyne 2.14 importable on 3.12+.
from soapservice import compat  # noqa: F401

__version__ = "0.1.0"
