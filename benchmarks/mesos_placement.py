"""How fast the Mesos framework places queued tasks into offers, and what a queued task costs in memory.

Scenario: 1,000 agents offering 8 cpus / 32 GiB each, 50,000 queued
one-cpu / 1 GiB tasks from 10 users x 5 processes, every tenth task wanting a
rack (delay scheduling). Each round gives ``Placer.place`` fresh offers for all
agents (the tasks of the previous round have finished), until the queue is
empty. Speed is placements per second of process CPU time spent in
``place``; memory is what ``add`` allocates per task (tracemalloc), once for
the placer's own structures and once including building the ``PendingTask``
and its ``Resources``. Standard library only; ``--quick`` runs a small case.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable

from mesos_backend.base import Resources
from mesos_backend.mesos.placement import Offer, PendingTask, PlacementPolicy, Placer

RACKS = 10
LOCAL_EVERY = 10  # every tenth task wants a rack


def make_offers(agents: int, round_no: int) -> list[Offer]:
    """One offer per agent, as the master sends after the previous tasks finished."""
    return [Offer(f"offer-{round_no}-{i}", f"agent-{i}", f"node{i}", Resources(8, 32768, 100000),
                  {"rack": f"r{i % RACKS}", "storage": "xfs"}) for i in range(agents)]


def make_task(i: int, users: int, processes: int) -> PendingTask:
    locality = (f"rack=r{i % RACKS}",) if i % LOCAL_EVERY == 0 else ()
    return PendingTask(f"task-{i:06d}", Resources(1, 1024), user=f"user{i % users}",
                       process=f"proc{(i // users) % processes}", priority=i % 3, locality=locality,
                       queued_at=0.0)


def allocated_per_task(n: int, build: Callable[[], Callable[[], None]]) -> float:
    """Bytes that ``build()``'s returned action allocates, per task; what ``build`` allocates is not counted."""
    action = build()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    keep = action()  # noqa: F841 (kept alive until measured)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / n


def memory(n: int, users: int, processes: int) -> tuple[float, float]:
    """(placer structures only, including the task objects) in bytes per queued task."""

    def placer_only() -> Callable[[], Placer]:
        tasks = [make_task(i, users, processes) for i in range(n)]
        placer = Placer(PlacementPolicy())

        def add_all() -> Placer:
            for t in tasks:
                placer.add(t)
            return placer
        return add_all

    def with_tasks() -> Callable[[], Placer]:
        placer = Placer(PlacementPolicy())

        def build_and_add() -> Placer:
            for i in range(n):
                placer.add(make_task(i, users, processes))
            return placer
        return build_and_add

    return allocated_per_task(n, placer_only), allocated_per_task(n, with_tasks)


def speed(n: int, agents: int, users: int, processes: int) -> dict[str, float]:
    """Run rounds until the queue is empty; CPU time of add() and of place() separately."""
    tasks = [make_task(i, users, processes) for i in range(n)]
    placer = Placer(PlacementPolicy(locality_delay=5.0))
    start = time.process_time()
    for t in tasks:
        placer.add(t)
    add_cpu = time.process_time() - start
    place_cpu, placements, rounds = 0.0, 0, 0
    while placer.pending():
        offers = make_offers(agents, rounds)
        start = time.process_time()
        result = placer.place(offers, now=float(rounds))
        place_cpu += time.process_time() - start
        rounds += 1
        placements += len(result.placements)
        if not result.placements and rounds > 100:
            raise RuntimeError(f"stuck with {placer.pending()} tasks queued")
        for p in result.placements:
            placer.finished(p.task_id)
    return {"rounds": rounds, "placements": placements, "place_cpu": place_cpu,
            "per_s": placements / place_cpu, "add_per_s": n / add_cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 offers and 5,000 tasks")
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--processes", type=int, default=5)
    args = parser.parse_args()
    agents, n = (100, 5000) if args.quick else (1000, 50000)
    run = speed(n, agents, args.users, args.processes)
    placer_bytes, total_bytes = memory(n, args.users, args.processes)
    print("| offers/round | queued tasks | queues | rounds | placements | place() CPU s | placements/s "
          "| add()/s | bytes/task (placer) | bytes/task (with task objects) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {agents:,} | {n:,} | {args.users} x {args.processes} | {run['rounds']} | {run['placements']:,} "
          f"| {run['place_cpu']:.3f} | {run['per_s']:,.0f} | {run['add_per_s']:,.0f} "
          f"| {placer_bytes:,.0f} | {total_bytes:,.0f} |")


if __name__ == "__main__":
    main()
