"""The load generator, in its own process: ready-made HTTP/1.1 requests over
keep-alive connections (asyncio, raw sockets), so the client costs as little as it can
and the same client drives soapservice and each bare baseline.

Reads one JSON job on stdin, prints one JSON result on stdout:

- ``{"mode": "closed", "port", "path", "headers", "body", "concurrency", "seconds",
  "warmup"}``: ``concurrency`` clients each send the next request as soon as the
  previous answer arrived; counts answers by status over ``seconds`` after ``warmup``.
  ``body`` may hold ``{k}``, replaced by a running number.
- ``{"mode": "sequence", ..., "count", "interval", "wait_receiver"}``: one request at a
  time; records when each answer returned (``time.time()``); with ``wait_receiver``
  (a port) waits until the receiver counted the delivery before sending the next one.
- ``{"mode": "paced", ..., "rate", "count" or "seconds", "connections", "choices"}``:
  open loop, request ``k`` due at ``start + k / rate`` on the first free one of
  ``connections`` keep-alive connections (late when all are busy: the lateness is the
  server's); records when each answer returned, how long each request took on its
  connection (``durations``) and from when it was due (``waits``, the client's view).
  ``choices`` maps a placeholder in ``body`` to a list: request ``k`` gets item
  ``k % len`` (``{"{s}": ["s0", "s1"]}`` spreads events over subscribers). With
  ``stop_file``, no request is started once that file exists (the lists end there);
  with ``max_seconds``, none after that many seconds from the start (those left have
  ``returned`` 0: not sent).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import time


def build(path: str, headers: dict, body: str, k: int, choices: dict | None = None) -> bytes:
    for placeholder, values in (choices or {}).items():
        body = body.replace(placeholder, str(values[k % len(values)]))
    data = body.replace("{k}", str(k)).encode()
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(data)}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length, chunked = None, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def closed(job) -> dict:
    counter = itertools.count()
    statuses: dict[int, int] = {}
    state = {"measuring": False, "stop": False}

    async def client():
        reader, writer = await asyncio.open_connection("127.0.0.1", job["port"])
        try:
            while not state["stop"]:
                writer.write(build(job["path"], job["headers"], job["body"], next(counter)))
                status = await read_response(reader)
                if state["measuring"]:
                    statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    tasks = [asyncio.create_task(client()) for _ in range(job["concurrency"])]
    await asyncio.sleep(job.get("warmup", 0.5))
    state["measuring"] = True
    started = time.perf_counter()
    await asyncio.sleep(job["seconds"])
    state["measuring"] = False
    elapsed = time.perf_counter() - started
    state["stop"] = True
    await asyncio.wait(tasks, timeout=30)
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    return {"ok": ok, "elapsed": elapsed, "rate": ok / elapsed,
            "statuses": {str(s): n for s, n in statuses.items()}}


async def receiver_count(port: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    data = await reader.read()
    writer.close()
    return json.loads(data.split(b"\r\n\r\n", 1)[1])["count"]


async def receiver_wait(port: int, count: int) -> None:
    """Until the receiver holds ``count`` requests (it answers when they arrived)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /wait?count={count} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Connection: close\r\n\r\n".encode())
    await reader.read()
    writer.close()


async def sequence(job) -> dict:
    reader, writer = await asyncio.open_connection("127.0.0.1", job["port"])
    returned, statuses = [], {}
    base = await receiver_count(job["wait_receiver"]) if job.get("wait_receiver") else 0
    for k in range(job["count"]):
        writer.write(build(job["path"], job["headers"], job["body"], k))
        status = await read_response(reader)
        returned.append(time.time())
        statuses[status] = statuses.get(status, 0) + 1
        if job.get("wait_receiver"):
            try:
                await asyncio.wait_for(receiver_wait(job["wait_receiver"], base + k + 1), 30)
            except TimeoutError:
                raise SystemExit(f"delivery of event {k} did not arrive within 30 s") from None
        if job.get("interval"):
            await asyncio.sleep(job["interval"])
    writer.close()
    return {"returned": returned, "statuses": {str(s): n for s, n in statuses.items()}}


async def paced(job) -> dict:
    rate = float(job["rate"])
    count = int(job.get("count") or round(job["seconds"] * rate))
    returned = [0.0] * count
    durations = [0.0] * count
    waits = [0.0] * count
    statuses: dict[int, int] = {}
    queue: asyncio.Queue = asyncio.Queue()

    async def connection():
        reader, writer = await asyncio.open_connection("127.0.0.1", job["port"])
        try:
            while True:
                k = await queue.get()
                if k is None:
                    return
                if deadline and time.perf_counter() > deadline:
                    continue
                sent = time.time()
                writer.write(build(job["path"], job["headers"], job["body"], k,
                                   job.get("choices")))
                status = await read_response(reader)
                returned[k] = time.time()
                durations[k] = returned[k] - sent
                waits[k] = returned[k] - (wall + k / rate)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    wall = time.time()
    started = time.perf_counter()
    workers = [asyncio.create_task(connection()) for _ in range(job.get("connections", 8))]
    stop_file = job.get("stop_file")
    deadline = started + job["max_seconds"] if job.get("max_seconds") else None
    sent = count
    for k in range(count):
        delay = started + k / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if (stop_file and os.path.exists(stop_file)) or (
                deadline and time.perf_counter() > deadline):
            sent = k
            break
        queue.put_nowait(k)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    del returned[sent:], durations[sent:], waits[sent:]
    return {"started": wall, "elapsed": time.perf_counter() - started, "returned": returned,
            "durations": durations, "waits": waits,
            "statuses": {str(s): n for s, n in statuses.items()}}


def main():
    job = json.loads(sys.stdin.read())
    modes = {"closed": closed, "sequence": sequence, "paced": paced}
    result = asyncio.run(modes[job["mode"]](job))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
