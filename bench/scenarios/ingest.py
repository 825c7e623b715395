"""ingest: durable POST /events per second vs a bare twisted.web 202."""

from __future__ import annotations

import json

from bench.context import rounds_against_bare
from bench.processes import events_headers
from bench.stores import BODY, median, new_store

TARGETS = {"ingest_ratio": (">=", 0.5)}
FIGURES = {"ingest_ratio": "POST /events/s (durable) vs a bare 202, 16 clients",
           "ingest_per_s": "soapservice's events/s"}


def run(bench):
    s = bench.sizes
    db = bench.path("ingest")
    new_store(db, bench.hook_urls(1))
    job = {"mode": "closed", "path": "/events", "concurrency": s.ingest_clients,
           "seconds": s.load_seconds, "warmup": 0.5, "headers": events_headers(),
           "body": json.dumps({"account": "alice", "event": "optin_finalized",
                               "data": json.loads(BODY.replace("{k}", "0"))}
                              ).replace('"k": 0', '"k": {k}')}
    ours_rates, bare_rates = rounds_against_bare(
        bench, "ingest", db, lambda server, bare_port: (dict(job, port=server.port),
                                                        dict(job, port=bare_port)))
    bench.record(
        {"ingest_ratio": median([a / b for a, b in zip(ours_rates, bare_rates,
                                                       strict=True)]),
         "ingest_per_s": median(ours_rates), "ingest_bare_per_s": median(bare_rates)},
        rounds={"ingest_per_s": ours_rates, "ingest_bare_per_s": bare_rates},
        baseline=(
            "python -m bench.bare ingest: a twisted.web resource that reads and parses the "
            "JSON body and answers 202, storing nothing. Both driven by bench.loadgen: "
            f"{s.ingest_clients} keep-alive clients for {s.load_seconds} s per round, "
            f"{s.load_rounds} rounds, alternating which goes first; soapservice "
            "(--no-delivery) commits each event and its one delivery row before "
            "answering 202."))
