"""Load generation and per-level figures for bench/serve.py: the client, the server's CPU, its GC passes."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import numpy as np
import psutil


@dataclass
class Target:
    name: str
    url: str
    body: dict
    pid: int | None = None  # the server's process (its children included) whose CPU is measured
    metrics_url: str | None = None  # where its GC passes can be read (ecomlab_gc_pause_seconds)


@dataclass
class Level:
    target: str
    clients: int
    latencies: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    wall_s: float = 0.0
    client_cpu_s: float = 0.0
    server_cpu_s: float = float("nan")
    full_gc: tuple[int, float] | None = None  # (full passes during the level, the longest bucket bound in ms)
    stopped_by: str = "count"

    @property
    def sent(self) -> int:
        return len(self.latencies) + sum(self.errors.values())

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.server_cpu_s / self.sent if self.sent else float("nan")

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000 if self.latencies else float("nan")


def server_cpu(pid: int | None) -> float:
    """User + system CPU seconds of `pid` and every process under it (BentoML's arbiter and workers)."""
    if pid is None:
        return float("nan")
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


GC_LINE = re.compile(r'^ecomlab_gc_pause_seconds_bucket\{generation="2",le="([^"]+)"\} ([0-9.e+]+)$', re.M)


def full_gc_buckets(metrics_url: str | None) -> dict[float, float]:
    """Cumulative counts of full (generation 2) GC passes per histogram bound, summed over workers."""
    if metrics_url is None:
        return {}
    text = httpx.get(metrics_url, timeout=30).text
    out: dict[float, float] = {}
    for bound, count in GC_LINE.findall(text):
        out[float(bound)] = out.get(float(bound), 0.0) + float(count)
    return out


def full_gc_during(before: dict[float, float], after: dict[float, float]) -> tuple[int, float] | None:
    """(full passes between two reads, the upper bound in ms of the bucket holding the longest one)."""
    if not after:
        return None
    delta = {b: after[b] - before.get(b, 0.0) for b in sorted(after)}
    total = int(delta.get(float("inf"), 0))
    longest = next((b for b in sorted(delta) if delta[b] >= total), float("inf")) if total else 0.0
    return total, longest * 1000


async def drive(target: Target, clients: int, requests: int, duration: float, timeout: float) -> Level:
    """`clients` concurrent keep-alive connections, each posting until the count or the time is used up.

    aiohttp (a BentoML dependency) with the body serialised once: the client shares the cores with the
    server, and httpx spent 2-3x the CPU per request here (up to 80% of a core at 100 clients).
    """
    import aiohttp

    level = Level(target.name, clients)
    issued = 0
    body = json.dumps(target.body).encode()
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as http:
        start = time.perf_counter()
        deadline = start + duration

        async def client() -> None:
            nonlocal issued
            while issued < requests:
                if time.perf_counter() >= deadline:
                    level.stopped_by = "time"
                    return
                issued += 1
                t = time.perf_counter()
                try:
                    async with http.post(target.url, data=body, headers=headers) as resp:
                        await resp.read()
                        status = resp.status
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    level.errors[type(exc).__name__] += 1
                    continue
                if status == 200:
                    level.latencies.append(time.perf_counter() - t)
                else:
                    level.errors[f"HTTP {status}"] += 1

        cpu = time.process_time()
        tasks = [asyncio.ensure_future(client()) for _ in range(clients)]
        done, pending = await asyncio.wait(tasks, timeout=duration + timeout + 5)
        for task in pending:
            task.cancel()
            level.errors["unfinished at the time limit"] += 1
        level.wall_s = time.perf_counter() - start
        level.client_cpu_s = time.process_time() - cpu
    return level


def measure(target: Target, clients: int, requests: int, duration: float, timeout: float) -> Level:
    """One level, with the server's CPU time and full GC passes over exactly that level.

    Each level is warmed up first at its own concurrency (2 x clients requests, not counted): the first
    burst of ~100 new connections right after start-up is accepted in a staircase (~14 ms per
    connection, up to ~1.2 s for the last) with and without serving/bentoml_fixes.py, and not after a
    pause of a few seconds or a first burst; a level measures the service, not that one-off.
    """
    asyncio.run(drive(target, clients, 2 * clients, duration, timeout))
    gc_before = full_gc_buckets(target.metrics_url)
    cpu_before = server_cpu(target.pid)
    level = asyncio.run(drive(target, clients, requests, duration, timeout))
    level.server_cpu_s = server_cpu(target.pid) - cpu_before
    level.full_gc = full_gc_during(gc_before, full_gc_buckets(target.metrics_url))
    return level


def warm_up(target: Target, n: int = 20) -> dict:
    """`n` requests that must all succeed; the last answer (for the same-answers check)."""
    with httpx.Client(timeout=30) as http:
        for _ in range(n):
            resp = http.post(target.url, json=target.body)
            if resp.status_code != 200:
                raise RuntimeError(f"{target.name}: warm-up request failed with {resp.status_code}: {resp.text[:500]}")
    return resp.json()


def row(level: Level) -> str:
    errors = sum(level.errors.values())
    cpu = 100 * level.client_cpu_s / level.wall_s if level.wall_s else 0.0
    gc = "-" if level.full_gc is None else f"{level.full_gc[0]} <={level.full_gc[1]:g}ms" if level.full_gc[0] else "0"
    return (f"{level.target:<26} {level.clients:>7} {level.sent:>8} {errors:>6} {level.throughput:>9.1f} "
            f"{level.pct(50):>8.2f} {level.pct(99):>9.2f} {level.cpu_ms_per_request:>9.3f} {cpu:>6.0f}% {gc:>14}  "
            f"{level.stopped_by}")


HEADER = (f"{'target':<26} {'clients':>7} {'requests':>8} {'errors':>6} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>9} "
          f"{'srv ms/req':>9} {'client':>7} {'full GC passes':>14}  stopped by")
