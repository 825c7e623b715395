"""The legacy platform's rpc/encoded SOAP 1.1 dialect (``/webservice/webservice/soap3``).

Spyne writes document/literal only; the platform's own clients call positionally and
read Apache maps as associative arrays. This package derives that WSDL
(:mod:`.wsdl`) and wire format (:mod:`.protocol`) from the one service definition in
:mod:`soapservice.operations`.
"""
