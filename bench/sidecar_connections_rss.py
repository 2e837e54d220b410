"""Sidecar RSS while 1,000 socket connections each hold a partial 1 MiB line (no newline).

A hostile or broken client fleet: every connection sends 1 MiB of a line and never finishes it.
The sidecar bounds the unfinished bytes it holds across connections (``MAX_BUFFERED_BYTES``),
serves at most ``MAX_CONNECTIONS`` at once (the rest wait in the listen backlog) and closes
connections idle mid-line, so its memory stays flat. Side by side in one run: the same
``floe-sidecar`` with no client at all (its floor), and a naive asyncio line server that buffers
each connection's partial line, as a plain ``StreamReader.readline`` server with the limit raised
to 1 MiB does.

    .venv/bin/python bench/sidecar_connections_rss.py [--connections 1000] [--line-mib 1]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sidecar_common import SIDECAR, sidecar_env

GOAL_MB = 100

NAIVE = """
import asyncio, os, sys
async def serve(reader, writer):
    try:
        while await reader.readline():
            writer.write(b"ACK 1\\n")
    except Exception:
        pass
async def main():
    server = await asyncio.start_unix_server(serve, sys.argv[1], limit=2 * 1024 * 1024,
                                             backlog=4096)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def hold(sock_path: Path, connections: int, line_bytes: int) -> list[socket.socket]:
    """Open the connections and send each its partial line from threads (a send blocks while
    the server does not read, as it must for connections it does not serve yet)."""
    held: list[socket.socket] = []
    chunk = b'{"partial": "' + b"x" * (line_bytes - 13)

    def send(client: socket.socket) -> None:
        with contextlib.suppress(OSError):  # shed by the server: it closed this connection
            client.sendall(chunk)

    threads = []
    for _ in range(connections):
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.settimeout(30)
        try:
            client.connect(str(sock_path))
        except OSError:
            client.close()
            continue
        held.append(client)
        thread = threading.Thread(target=send, args=(client,), daemon=True)
        thread.start()
        threads.append(thread)
    deadline = time.monotonic() + 30
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return held


def measure(
    cmd: list[str], sock_path: Path, connections: int, line_bytes: int
) -> tuple[float, float]:
    """(RSS before the clients, peak RSS while they hold their lines), MB."""
    proc = subprocess.Popen(
        cmd, env=sidecar_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while not sock_path.exists():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"{cmd[0]} did not start")
            time.sleep(0.05)
        time.sleep(0.5)
        before = rss_mb(proc.pid)
        peak = before
        held: list[socket.socket] = []
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_mb(proc.pid))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        held = hold(sock_path, connections, line_bytes)
        time.sleep(2.0)
        done.set()
        sampler.join()
        assert proc.poll() is None, "the server died"
        for client in held:
            client.close()
        return before, peak
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--line-mib", type=float, default=1.0)
    args = parser.parse_args()
    line_bytes = int(args.line_mib * 1024 * 1024)
    work = Path(tempfile.mkdtemp(prefix="floe-bench-"))
    try:
        rows = []
        for name, make in (
            (
                "floe-sidecar",
                lambda s: [
                    str(SIDECAR),
                    "--spool",
                    str(work / "spool"),
                    "--socket",
                    str(s),
                    "--no-default-sinks",
                    "--sink",
                    f"file:{work / 'out.ndjson'}",
                ],
            ),
            ("naive asyncio readline server", lambda s: [sys.executable, "-c", NAIVE, str(s)]),
        ):
            sock_path = work / f"{name.split()[0]}.sock"
            before, peak = measure(make(sock_path), sock_path, args.connections, line_bytes)
            rows.append((name, before, peak))
            shutil.rmtree(work / "spool", ignore_errors=True)
        print(f"{args.connections:,} connections, each holding {line_bytes:,} bytes of a line")
        print()
        print("| server | RSS idle MB | peak RSS MB |")
        print("|---|---:|---:|")
        for name, before, peak in rows:
            print(f"| {name} | {before:.1f} | {peak:.1f} |")
        floe, naive = rows[0][2], rows[1][2]
        print()
        print(f"floe / naive peak RSS: {floe / naive:.2f}")
        verdict = "OK" if floe <= GOAL_MB else "ABOVE GOAL"
        print(f"floe / goal ({GOAL_MB} MB): {floe / GOAL_MB:.2f}  {verdict}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
