"""soapservice: a self-hosted webhook sender with the legacy platform's SOAP API."""

__version__ = "0.1.0"
