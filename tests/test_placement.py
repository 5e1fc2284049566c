"""The placement decision: packing, caps, fair share, priority/FIFO and delay scheduling."""

from collections import Counter

import pytest

from mesos_backend.base import Resources
from mesos_backend.mesos.placement import (
    Offer,
    PendingTask,
    PlacementPolicy,
    Placer,
    offer_places,
)


def offer(offer_id: str, cpus: float = 8, mem: float = 32768, host: str | None = None, **attributes: str) -> Offer:
    return Offer(offer_id, f"agent-{offer_id}", host or f"host-{offer_id}", Resources(cpus, mem), attributes)


def task(task_id: str, cpus: float = 1, mem: float = 1024, **fields) -> PendingTask:
    return PendingTask(task_id, Resources(cpus, mem), **fields)


def placer(tasks=(), **policy) -> Placer:
    p = Placer(PlacementPolicy(**policy))
    for t in tasks:
        p.add(t)
    return p


def by_offer(result) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for pl in result.placements:
        out.setdefault(pl.offer_id, []).append(pl.task_id)
    return out


def test_packs_several_tasks_into_one_offer_and_reports_unused_offers():
    p = placer([task("a", 2), task("b", 3), task("c", 3)])
    result = p.place([offer("o1"), offer("o2")], now=0)
    assert by_offer(result) == {"o1": ["a", "b", "c"]}
    assert result.unused_offer_ids == ["o2"]
    pl = result.placements[0]
    assert (pl.agent_id, pl.hostname, pl.resources) == ("agent-o1", "host-o1", Resources(2, 1024))
    assert p.pending() == 0 and p.running_cpus() == 8


def test_fills_an_offer_before_opening_the_next_and_respects_memory():
    p = placer([task(f"t{i}", 1, 10000) for i in range(5)])
    result = p.place([offer("small", 4, 20000), offer("big", 8, 40000)], now=0)
    # Largest first: 4 tasks fill big's memory, the 5th goes to small.
    assert by_offer(result) == {"big": ["t0", "t1", "t2", "t3"], "small": ["t4"]}
    assert result.unused_offer_ids == []


def test_empty_queue_leaves_every_offer_unused():
    result = placer().place([offer("o1"), offer("o2")], now=0)
    assert result.placements == [] and result.unused_offer_ids == ["o1", "o2"]


def test_task_bigger_than_any_offer_stays_queued_without_blocking_its_queue():
    p = placer([task("huge", 64), task("small", 1)])
    result = p.place([offer("o1")], now=0)
    assert [pl.task_id for pl in result.placements] == ["small"]
    assert p.pending() == 1
    assert p.place([offer("o2")], now=1).unused_offer_ids == ["o2"]
    assert p.place([offer("o3", 64, 100000)], now=2).placements[0].task_id == "huge"


def test_task_that_fits_a_later_offer_goes_there():
    p = placer([task("big", 6), task("s1", 1), task("s2", 1)])
    result = p.place([offer("o1", 4), offer("o2", 8)], now=0)
    assert by_offer(result) == {"o2": ["big", "s1", "s2"]}
    assert result.unused_offer_ids == ["o1"]


def test_max_cpu_caps_running_and_placed_and_finished_frees_it():
    p = placer([task(f"t{i}") for i in range(10)], max_cpu=3)
    p.started("old", "someone", "proc", Resources(1, 100))
    result = p.place([offer("o1"), offer("o2")], now=0)
    assert [pl.task_id for pl in result.placements] == ["t0", "t1"]
    assert result.unused_offer_ids == ["o2"]
    assert p.running_cpus() == 3
    assert p.place([offer("o3")], now=1).placements == []
    p.finished("old")
    p.finished("t0")
    p.finished("unknown")  # ignored
    assert [pl.task_id for pl in p.place([offer("o4")], now=2).placements] == ["t2", "t3"]


def test_user_cap_leaves_room_for_other_users():
    tasks = [task(f"{u}{i}", user=u) for u in "ab" for i in range(5)]
    p = placer(tasks, user_max_cpu=2)
    result = p.place([offer("o1")], now=0)
    assert Counter(pl.task_id[0] for pl in result.placements) == {"a": 2, "b": 2}
    p.finished("a0")
    assert [pl.task_id for pl in p.place([offer("o2")], now=1).placements] == ["a2"]


def test_fair_share_between_users_follows_weights():
    tasks = [task(f"{u}{i}", user=u) for u in ("heavy", "light") for i in range(500)]
    p = placer(tasks, user_weights={"heavy": 2.0})
    result = p.place([offer(f"o{i}", 3) for i in range(100)], now=0)
    assert Counter(pl.task_id[0] for pl in result.placements) == {"h": 200, "l": 100}


def test_fair_share_counts_running_tasks_and_weights_processes_within_a_user():
    p = placer(user_weights={"u": 1.0}, process_weights={"ndvi": 3.0})
    p.started("r1", "other", "x", Resources(4, 1))  # other already holds 4 cpus
    for i in range(100):
        p.add(task(f"n{i}", user="u", process="ndvi"))
        p.add(task(f"m{i}", user="u", process="mosaic"))
        p.add(task(f"x{i}", user="other", process="x"))
    result = p.place([offer("o1", 28, 10**6)], now=0)
    counts = Counter(pl.task_id[0] for pl in result.placements)
    assert counts == {"n": 12, "m": 4, "x": 12}  # u: 16 cpus, other: 4 + 12; ndvi:mosaic 3:1


def test_within_a_queue_priority_then_queued_at_then_arrival():
    p = placer([
        task("low-late", queued_at=3), task("high-late", priority=5, queued_at=2),
        task("high-early", priority=5, queued_at=1), task("low-early", queued_at=0.5),
        task("low-early-2", queued_at=0.5),
    ])
    result = p.place([offer("o1", 5)], now=10)
    assert [pl.task_id for pl in result.placements] == [
        "high-early", "high-late", "low-early", "low-early-2", "low-late"]


def test_local_offer_preferred():
    p = placer([task("t", locality=("rack=r2",), queued_at=0)])
    result = p.place([offer("o1", 16, rack="r1"), offer("o2", 4, rack="r2")], now=0)
    assert by_offer(result) == {"o2": ["t"]}
    assert result.unused_offer_ids == ["o1"]


def test_locality_matches_hostname_values_and_set_members():
    o = offer("o1", host="node7", storage="xfs", datasets="s2,landsat")
    assert {"node7", "hostname=node7", "xfs", "storage=xfs", "landsat", "datasets=landsat",
            "datasets=s2,landsat"} <= offer_places(o)
    assert "storage=landsat" not in offer_places(o)
    p = placer([task("by-host", locality=("node7",)), task("by-set", locality=("datasets=s2",)),
                task("by-value", locality=("xfs",)), task("elsewhere", locality=("storage=nfs",))])
    result = p.place([o], now=1)
    assert sorted(pl.task_id for pl in result.placements) == ["by-host", "by-set", "by-value"]


def test_local_task_waits_for_the_delay_then_takes_any_offer():
    p = placer([task("t", locality=("rack=r9",), queued_at=100)], locality_delay=5)
    assert p.next_locality_deadline(100) == 105
    result = p.place([offer("o1", rack="r1")], now=103)
    assert result.placements == [] and result.unused_offer_ids == ["o1"]
    assert p.pending() == 1
    assert p.next_locality_deadline(104) == 105
    assert p.next_locality_deadline(106) == 106  # overdue: it would take any offer now
    result = p.place([offer("o2", rack="r1")], now=105)
    assert by_offer(result) == {"o2": ["t"]}
    assert p.next_locality_deadline(106) is None


def test_local_task_waits_when_its_local_offer_is_full():
    p = placer([task("a", 4, locality=("node1",), queued_at=0), task("b", 4, locality=("node1",), queued_at=0)],
               locality_delay=5)
    result = p.place([offer("o1", 4, host="node1"), offer("o2", 8, host="node2")], now=1)
    assert by_offer(result) == {"o1": ["a"]}
    assert result.unused_offer_ids == ["o2"]
    assert by_offer(p.place([offer("o3", host="node2")], now=5)) == {"o3": ["b"]}


def test_waiting_local_task_blocks_neither_other_users_nor_its_own_queue():
    p = placer([
        task("a-local", user="a", priority=9, locality=("rack=r9",), queued_at=0),
        task("a-plain", user="a", queued_at=1),
        task("b-plain", user="b", queued_at=0),
    ], locality_delay=60)
    result = p.place([offer("o1", 2, rack="r1")], now=2)
    assert sorted(pl.task_id for pl in result.placements) == ["a-plain", "b-plain"]
    assert p.pending() == 1


def test_remove_before_placement():
    p = placer([task("a"), task("b", locality=("x",)), task("c")])
    assert p.remove("a").task_id == "a"
    assert p.remove("b").task_id == "b"
    assert p.remove("a") is None
    assert p.pending() == 1
    assert p.next_locality_deadline(0) is None
    assert [pl.task_id for pl in p.place([offer("o1", host="x")], now=10).placements] == ["c"]


def test_duplicate_task_id_is_refused():
    p = placer([task("a")])
    with pytest.raises(ValueError):
        p.add(task("a"))
    p.place([offer("o1")], now=0)
    with pytest.raises(ValueError):
        p.add(task("a"))  # still running


def test_started_takes_a_queued_task_out_of_the_queue_and_is_idempotent():
    p = placer([task("a"), task("b")], max_cpu=4)
    p.started("a", "", "", Resources(2, 1))
    p.started("a", "", "", Resources(2, 1))
    assert p.pending() == 1 and p.running_cpus() == 2


def test_many_removals_are_compacted_and_the_rest_still_placed():
    p = placer([task(f"t{i}", user=f"u{i % 3}", locality=("h",) if i % 2 else (), queued_at=0)
                for i in range(5000)], locality_delay=0)
    for i in range(0, 5000, 5):
        if i % 10:
            p.remove(f"t{i}")
    for i in range(5000):
        if i % 5:
            p.remove(f"t{i}")
    result = p.place([offer(f"o{i}", 8) for i in range(100)], now=1)
    assert sorted(int(pl.task_id[1:]) for pl in result.placements) == list(range(0, 5000, 10))
    assert p.pending() == 0


def test_bad_weights_are_refused():
    with pytest.raises(ValueError):
        PlacementPolicy(user_weights={"a": 0})
