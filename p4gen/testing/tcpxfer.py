"""A byte-exact TCP transfer between two real Linux stacks (run inside network namespaces).

    python -m p4gen.testing.tcpxfer serve ADDR PORT (recv|send) NBYTES SEED
    python -m p4gen.testing.tcpxfer connect ADDR PORT (send|recv) NBYTES SEED [TIMEOUT]

The sender writes NBYTES of a seeded pseudo-random stream; the receiver reads
until the sender closes. Each side prints one JSON line: bytes moved, the
SHA-256 of what it sent or received, and the seconds from connection to close.
The expected hash is a function of (NBYTES, SEED) alone (`expected_sha256`),
so a test compares both sides with an expectation computed independently of
the path in between.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import sys
import time

CHUNK = 1 << 20


def stream(nbytes: int, seed: int):
    rng = random.Random(seed)
    left = nbytes
    while left > 0:
        n = min(CHUNK, left)
        yield rng.randbytes(n)
        left -= n


def expected_sha256(nbytes: int, seed: int) -> str:
    h = hashlib.sha256()
    for chunk in stream(nbytes, seed):
        h.update(chunk)
    return h.hexdigest()


def _send(conn: socket.socket, nbytes: int, seed: int) -> dict:
    h = hashlib.sha256()
    sent = 0
    t0 = time.perf_counter()
    for chunk in stream(nbytes, seed):
        conn.sendall(chunk)
        h.update(chunk)
        sent += len(chunk)
    conn.shutdown(socket.SHUT_WR)
    conn.recv(1)  # until the receiver has everything and closes
    return {"bytes": sent, "sha256": h.hexdigest(), "seconds": time.perf_counter() - t0}


def _recv(conn: socket.socket) -> dict:
    h = hashlib.sha256()
    got = 0
    t0 = time.perf_counter()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while True:
        n = conn.recv_into(buf)
        if n == 0:
            break
        h.update(view[:n])
        got += n
    seconds = time.perf_counter() - t0
    conn.close()
    return {"bytes": got, "sha256": h.hexdigest(), "seconds": seconds}


def main(argv: list[str]) -> int:
    role, addr, port, what, nbytes, seed = argv[:6]
    timeout = float(argv[6]) if len(argv) > 6 else 120.0
    port_n, n, s = int(port), int(nbytes), int(seed)
    if role == "serve":
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((addr, port_n))
        ls.listen(1)
        print(json.dumps({"listening": port_n}), flush=True)
        ls.settimeout(timeout)
        conn, _ = ls.accept()
    else:
        conn = socket.create_connection((addr, port_n), timeout=timeout)
    conn.settimeout(timeout)
    result = _send(conn, n, s) if what == "send" else _recv(conn)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
