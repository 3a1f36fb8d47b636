"""What a cluster would buy: list-schedule a finished graph's measured cells on N workers."""

from __future__ import annotations

import heapq


def critical_path(seconds: dict[str, float], after: dict[str, tuple[str, ...]]) -> tuple[float, list[str]]:
    """The longest chain of dependent cells (no number of workers finishes sooner), and its cells."""
    memo: dict[str, tuple[float, list[str]]] = {}

    def longest(c: str) -> tuple[float, list[str]]:
        if c not in memo:
            best = max((longest(a) for a in after.get(c, ()) if a in seconds), default=(0.0, []))
            memo[c] = (best[0] + seconds[c], [*best[1], c])
        return memo[c]

    return max((longest(c) for c in seconds), default=(0.0, []))


def list_schedule(seconds: dict[str, float], after: dict[str, tuple[str, ...]], workers: int) -> float:
    """Predicted wall time: whenever a worker is free it takes the ready cell with the longest tail."""
    tail = {c: critical_tail(c, seconds, after) for c in seconds}
    waiting = {c: {a for a in after.get(c, ()) if a in seconds} for c in seconds}
    ready = [(-tail[c], c) for c, w in waiting.items() if not w]
    heapq.heapify(ready)
    running: list[tuple[float, str]] = []  # (finish time, cell)
    now, free = 0.0, workers
    while ready or running:
        while ready and free:
            _, c = heapq.heappop(ready)
            heapq.heappush(running, (now + seconds[c], c))
            free -= 1
        now, done = heapq.heappop(running)
        free += 1
        for c, w in waiting.items():
            if done in w:
                w.discard(done)
                if not w:
                    heapq.heappush(ready, (-tail[c], c))
    return now


def critical_tail(cell: str, seconds: dict[str, float], after: dict[str, tuple[str, ...]]) -> float:
    """The cell's own time plus the longest chain of cells waiting on it."""
    children = [c for c, deps in after.items() if cell in deps and c in seconds]
    return seconds[cell] + max((critical_tail(c, seconds, after) for c in children), default=0.0)
