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
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time


def build(path: str, headers: dict, body: str, k: int) -> bytes:
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


def main():
    job = json.loads(sys.stdin.read())
    result = asyncio.run(closed(job) if job["mode"] == "closed" else sequence(job))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
