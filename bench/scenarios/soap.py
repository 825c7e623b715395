"""soap: GetWebHooks calls/s vs a bare Spyne no-op operation on the same stack."""

from __future__ import annotations

from bench.context import rounds_against_bare
from bench.processes import PASSWORD, soap_envelope
from bench.stores import median, new_store

TARGETS = {"soap_ratio": (">=", 0.6)}
FIGURES = {"soap_ratio": "GetWebHooks/s vs a bare Spyne no-op, 16 clients",
           "soap_per_s": "soapservice's GetWebHooks calls/s"}


def run(bench):
    s = bench.sizes
    db = bench.path("soap")
    new_store(db, bench.hook_urls(5))

    def jobs(server, bare_port):
        server.soap("GetWebHooks")  # fills the credential cache, as any client would
        job = {"mode": "closed", "path": "/soap", "concurrency": s.soap_clients,
               "seconds": s.load_seconds, "warmup": 0.5,
               "headers": {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}}
        from bench.bare import SOAP_NOOP
        return (dict(job, port=server.port, body=soap_envelope("GetWebHooks", "")),
                dict(job, port=bare_port, body=SOAP_NOOP.format(password=PASSWORD)))

    ours_rates, bare_rates = rounds_against_bare(bench, "soap", db, jobs)
    bench.record(
        {"soap_ratio": median([a / b for a, b in zip(ours_rates, bare_rates, strict=True)]),
         "soap_per_s": median(ours_rates), "soap_bare_per_s": median(bare_rates)},
        rounds={"soap_per_s": ours_rates, "soap_bare_per_s": bare_rates},
        baseline=(
            "python -m bench.bare soap: a Spyne Application (Soap11, validator=None) with "
            "one no-op operation Noop(username, password) -> 'OK', in a WsgiApplication "
            "behind twisted.web's WSGIResource with a 2..16 thread pool (as soapservice "
            f"serves /soap). Both driven by bench.loadgen: {s.soap_clients} keep-alive "
            f"clients posting a ready-made envelope for {s.load_seconds} s per round, "
            f"{s.load_rounds} rounds, alternating which goes first; soapservice answers "
            "GetWebHooks for an account with 5 webhooks (credential cache warm)."))
