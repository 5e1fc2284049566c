"""Which queued tasks go into which Mesos offers: a pure, fast placement decision.

No I/O, no threads, no Mesos JSON. The framework parses offers into ``Offer``,
calls ``Placer.place`` once per batch of offers (a *round*), turns the
``Placement`` objects into ACCEPT/LAUNCH calls and DECLINEs
``unused_offer_ids``. Tasks are queued per (user, process).

One round:

1. Local tasks whose locality delay has run out join their queue's ready heap.
2. Offers are ordered: those some waiting local task wants first, then the
   largest (cpus, mem) first.
3. Offers are filled one at a time until nothing more goes in ("next fit").
   For every slot in an offer the fair-share-next queue gives its first task
   that may use this offer. Fair share is two-level: users, then that user's
   processes, each by the cpu time it has received divided by its weight,
   kept in a heap re-keyed after every placement, so one placement costs
   O(log users + log processes), whatever the queue length.
   When the queue's task
   - would break ``max_cpu`` or ``user_max_cpu``: the queue sits out the rest
     of the round (caps only tighten within a round);
   - does not fit what is left of this offer but fits a later one: the queue
     sits out this offer only;
   - fits no offer left in the round: the task is set aside for the round and
     the queue's later tasks may go ahead (an oversize task does not block its
     queue; tasks that can never fit stay queued: the caller's concern).
   An offer closes as soon as its cpus or mem are below the smallest queued
   task's (a lower bound kept on ``add``), so a full offer costs nothing more.

Why next fit and not first/best fit decreasing: the order of tasks is set by
fairness, priority and FIFO, not by size, so sorting tasks is not allowed;
filling one offer completely before opening the next is what "prefer
already-used offers" asks for, costs O(1) per placement (no scan of all
offers per task) and is optimal when tasks are uniform. Large offers first
means a capped round uses few offers and declines the rest whole.

Fair share is measured over time, not by the tasks running at this
instant: with 6 slots and weights 3:1, counting running cpus would settle on
4:2 for ever. Each user and each (user, process) queue has an account of the
cpu time it received: a task is charged ``START_CHARGE_SECONDS`` of its cpus
when it is placed (so that one round interleaves queues by weight), then its
cpus for every second it runs; the charge for its start is dropped when it
ends. The next slot goes to the lowest account divided by its weight, so the
achieved cpu-seconds follow the weights. A user or queue that comes back after
an idle spell is lifted to the lowest account among those that were waiting
all along: it cannot claim the turns it did not want back then.

Data locality, with delay scheduling (Zaharia et al., as in Spark): a task
with ``locality`` does not enter its queue's ready heap until ``queued_at +
locality_delay``. While it waits it is reachable only through the queue's
index from place ("rack=r1", "node7", ...) to a heap of tasks, and is offered
only offers matching one of its places (an offer's places: its hostname,
every attribute value and SET member, and "name=value" for each). It never
blocks anything: other queues, and later tasks of its own queue, go ahead.
After the delay it takes any offer, still through the index at matching
offers, which come first in the round. Within a queue, the order is always
priority (higher first), then ``queued_at``, then arrival.

Removal is lazy: heaps keep entries of tasks that left (placed, removed), and
an entry counts only while ``_tasks[task_id] is task``; heaps are compacted
when the dead entries outnumber the queued tasks (amortised O(1)).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..base import Resources

__all__ = ["Offer", "PendingTask", "Placement", "PlacementPolicy", "PlacementResult", "Placer", "offer_places"]

# The tolerance of Resources.fits_in.
_EPS = 1e-9
# Cpu-seconds a task is charged when it is placed, before it has run (see the fair share above).
START_CHARGE_SECONDS = 1.0
# Compact the heaps only once there is this much garbage at least.
_MIN_GARBAGE = 1024

# A queued task in a heap: (-priority, queued_at, arrival number, task); the
# arrival number is unique, so tasks themselves are never compared.
_Entry = tuple[int, float, int, "PendingTask"]


@dataclass(frozen=True, slots=True)
class Offer:
    """What the framework got from the master, already parsed."""

    offer_id: str
    agent_id: str
    hostname: str
    resources: Resources
    attributes: Mapping[str, str] = field(default_factory=dict)  # TEXT/SCALAR as str; SET as comma-joined


@dataclass(slots=True)
class PendingTask:
    """A task waiting for an offer; slots keep a queue of 50,000 small."""

    task_id: str
    resources: Resources
    user: str = ""
    process: str = ""
    priority: int = 0  # higher first within the same (user, process) queue
    # Wanted places: "name=value" matches an agent attribute (or a member of a
    # SET attribute, or "hostname=..."); a bare "value" matches the hostname or
    # any attribute value.
    locality: tuple[str, ...] = ()
    queued_at: float = 0.0  # monotonic seconds; delay scheduling counts from here


@dataclass(frozen=True, slots=True)
class Placement:
    """Launch this task on this offer's agent with these resources."""

    task_id: str
    offer_id: str
    agent_id: str
    hostname: str
    resources: Resources


@dataclass(frozen=True)
class PlacementPolicy:
    """Caps, fair-share weights and the locality delay of one framework."""

    max_cpu: float | None = None  # all running+placed tasks of this framework together
    user_max_cpu: float | None = None  # per user
    locality_delay: float = 5.0  # seconds a task with locality waits for a matching offer before taking any
    process_weights: Mapping[str, float] = field(default_factory=dict)  # fair share per process (default 1.0)
    user_weights: Mapping[str, float] = field(default_factory=dict)  # per user (default 1.0)
    user_cpus: Mapping[str, float | None] = field(default_factory=dict)  # a user's own cap over user_max_cpu

    def __post_init__(self) -> None:
        if self.locality_delay < 0:
            raise ValueError("locality_delay must be >= 0")
        for name, weight in (*self.process_weights.items(), *self.user_weights.items()):
            if not weight > 0:
                raise ValueError(f"the weight of {name!r} must be > 0, not {weight!r}")

    def user_cap(self, user: str) -> float | None:
        """The cpus ``user``'s tasks may hold: its own cap if it has one (None there: no cap), else user_max_cpu."""
        return self.user_cpus[user] if user in self.user_cpus else self.user_max_cpu


@dataclass
class PlacementResult:
    """Placed tasks have left the queue and count as running (as if ``started``)."""

    placements: list[Placement] = field(default_factory=list)
    unused_offer_ids: list[str] = field(default_factory=list)  # nothing placed: DECLINE them


def offer_places(offer: Offer) -> frozenset[str]:
    """Every locality string that an offer matches (see ``PendingTask.locality``)."""
    places = {offer.hostname, f"hostname={offer.hostname}"}
    for name, value in offer.attributes.items():
        for item in _values(value):
            places.add(item)
            places.add(f"{name}={item}")
    return frozenset(places)


def _values(value: str) -> set[str]:
    """An attribute's value, and each member if it is a comma-joined SET."""
    return {value, *(member.strip() for member in value.split(","))} if "," in value else {value}


def _fits(res: Resources, cpus: float, mem: float, disk: float, gpus: float) -> bool:
    """Resources.fits_in on plain numbers: no Resources object per step in the hot loop."""
    return (res.cpus <= cpus + _EPS and res.mem <= mem + _EPS and res.disk <= disk + _EPS
            and res.gpus <= gpus)


class _Account:
    """The cpu time a user or a queue has received: settled seconds of ended tasks plus its running tasks."""

    __slots__ = ("settled", "cpus", "starts")

    def __init__(self) -> None:
        self.settled = 0.0  # cpu-seconds of ended tasks
        self.cpus = 0.0  # running cpus
        self.starts = 0.0  # sum of cpus x start time over running tasks

    def service(self, now: float) -> float:
        return self.settled + self.cpus * (now + START_CHARGE_SECONDS) - self.starts

    def start(self, cpus: float, now: float) -> None:
        self.cpus += cpus
        self.starts += cpus * now

    def end(self, cpus: float, started: float, now: float) -> None:
        self.settled += cpus * max(now - started, 0.0)
        self.cpus -= cpus
        self.starts -= cpus * started
        if self.cpus <= _EPS:
            self.cpus = self.starts = 0.0


class _Queue:
    """The tasks of one (user, process): ready heap plus an index of local tasks by place."""

    __slots__ = ("key", "process", "weight", "ready", "local", "count", "n_local")

    def __init__(self, key: tuple[str, str], weight: float) -> None:
        self.key = key
        self.process = key[1]
        self.weight = weight
        self.ready: list[_Entry] = []  # may take any offer
        self.local: dict[str, list[_Entry]] = {}  # place → heap of tasks wanting it
        self.count = 0  # queued tasks (live entries)
        self.n_local = 0  # queued tasks with locality


class _Slot:
    """An offer during a round, with what is left of it."""

    __slots__ = ("offer", "cpus", "mem", "disk", "gpus", "places", "used")

    def __init__(self, offer: Offer, places: frozenset[str]) -> None:
        res = offer.resources
        self.offer = offer
        self.cpus, self.mem, self.disk, self.gpus = res.cpus, res.mem, res.disk, res.gpus
        self.places = places
        self.used = False

    def take(self, res: Resources) -> None:
        self.cpus -= res.cpus
        self.mem -= res.mem
        self.disk -= res.disk
        self.gpus -= res.gpus
        self.used = True


class _Turn:
    """A user during a round: its non-empty queues in a heap by share."""

    __slots__ = ("user", "weight", "queues")

    def __init__(self, user: str, weight: float) -> None:
        self.user = user
        self.weight = weight
        self.queues: list[tuple[float, str, _Queue]] = []


class _Round:
    """The fair-share heaps of one ``place`` call and what to put back afterwards.

    Invariant: a user is in ``users`` exactly when its ``queues`` heap is not
    empty, and the top queue of the top user has the next turn.
    """

    __slots__ = ("users", "out_for_offer", "aside")

    def __init__(self) -> None:
        self.users: list[tuple[float, str, _Turn]] = []
        self.out_for_offer: list[tuple[_Turn, _Queue]] = []  # back in at the next offer
        self.aside: list[tuple[list[_Entry], _Entry]] = []  # tasks back in their heaps after the round

    def sit_out(self, until_next_offer: bool) -> None:
        """Take the queue whose turn it is out of this offer (or the whole round)."""
        turn = self.users[0][2]
        queue = heapq.heappop(turn.queues)[2]
        if until_next_offer:
            self.out_for_offer.append((turn, queue))
        if not turn.queues:
            heapq.heappop(self.users)

    def set_aside(self, heap: list[_Entry]) -> None:
        """Skip a heap's top task for the rest of the round."""
        self.aside.append((heap, heapq.heappop(heap)))


class Placer:
    """Queues tasks and places them into offers; see the module docstring."""

    def __init__(self, policy: PlacementPolicy) -> None:
        self._policy = policy
        self._tasks: dict[str, PendingTask] = {}
        self._queues: dict[tuple[str, str], _Queue] = {}
        self._waiting: list[tuple[float, _Entry]] = []  # local tasks by the end of their delay
        self._n_local = 0
        self._arrivals = 0
        self._garbage = 0  # dead heap entries, roughly
        self._min_cpus = self._min_mem = math.inf  # lower bounds over queued tasks
        self._running: dict[str, tuple[str, str, float, float]] = {}  # task id → (user, process, cpus, start)
        self._user_cpus: dict[str, float] = {}
        self._queue_cpus: dict[tuple[str, str], float] = {}
        self._user_accounts: dict[str, _Account] = {}
        self._queue_accounts: dict[tuple[str, str], _Account] = {}
        self._waited: tuple[set[str], set[tuple[str, str]]] = (set(), set())  # backlogged in the last round
        self._now = 0.0  # the time of the last round; bookkeeping without a time uses it
        self._total_cpus = 0.0

    @property
    def policy(self) -> PlacementPolicy:
        return self._policy

    def set_policy(self, policy: PlacementPolicy) -> None:
        """New caps and weights, from the next round on; queued and running tasks keep their places."""
        self._policy = policy
        for queue in self._queues.values():
            queue.weight = policy.process_weights.get(queue.process, 1.0)

    # Queue and running bookkeeping

    def add(self, task: PendingTask) -> None:
        """Queue a task; a task id already queued or running is a caller bug (ValueError)."""
        if task.task_id in self._tasks or task.task_id in self._running:
            raise ValueError(f"task {task.task_id!r} is already queued or running")
        self._arrivals += 1
        entry = (-task.priority, task.queued_at, self._arrivals, task)
        queue = self._queue(task.user, task.process)
        queue.count += 1
        self._tasks[task.task_id] = task
        if task.locality:
            queue.n_local += 1
            self._n_local += 1
            for place in set(task.locality):
                heapq.heappush(queue.local.setdefault(place, []), entry)
            heapq.heappush(self._waiting, (task.queued_at + self._policy.locality_delay, entry))
        else:
            heapq.heappush(queue.ready, entry)
        self._min_cpus = min(self._min_cpus, task.resources.cpus)
        self._min_mem = min(self._min_mem, task.resources.mem)

    def remove(self, task_id: str) -> PendingTask | None:
        """Unqueue a task (cancelled before placement); None if it is not queued."""
        task = self._tasks.pop(task_id, None)
        if task is not None:
            self._unqueued(task)
            self._garbage += 1
            self._maybe_compact()
        return task

    def started(self, task_id: str, user: str, process: str, resources: Resources, now: float | None = None) -> None:
        """Count a task as running (launched, or recovered after a restart); idempotent by id."""
        self.remove(task_id)
        self.finished(task_id, now)
        self._count_running(task_id, user, process, resources.cpus, self._now if now is None else now)

    def finished(self, task_id: str, now: float | None = None) -> None:
        """A running task ended: free its share of the caps, settle its cpu time. Unknown ids are ignored."""
        record = self._running.pop(task_id, None)
        if record is None:
            return
        user, process, cpus, started = record
        now = self._now if now is None else now
        _subtract(self._user_cpus, user, cpus)
        _subtract(self._queue_cpus, (user, process), cpus)
        self._total_cpus = self._total_cpus - cpus if self._running else 0.0
        self._user_accounts[user].end(cpus, started, now)
        self._queue_accounts[(user, process)].end(cpus, started, now)

    def tasks(self) -> Iterable[PendingTask]:
        """The queued tasks, in no particular order."""
        return self._tasks.values()

    def user_cpus(self, user: str) -> float:
        """Cpus the user's tasks hold (running or placed)."""
        return self._user_cpus.get(user, 0.0)

    def pending(self) -> int:
        return len(self._tasks)

    def running_cpus(self) -> float:
        return self._total_cpus

    def next_locality_deadline(self, now: float) -> float | None:
        """When the next waiting local task will take any offer (``now`` if one already would).

        The caller REVIVEs (or stops declining for long) by then, so that the
        task gets offers to fall back on.
        """
        waiting = self._waiting
        while waiting and not self._alive(waiting[0][1]):
            heapq.heappop(waiting)
        return max(waiting[0][0], now) if waiting else None

    def _queue(self, user: str, process: str) -> _Queue:
        key = (user, process)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue(key, self._policy.process_weights.get(process, 1.0))
        return queue

    def _unqueued(self, task: PendingTask) -> None:
        """Bookkeeping for a task that left ``_tasks``; its heap entries die lazily."""
        key = (task.user, task.process)
        queue = self._queues[key]
        queue.count -= 1
        if task.locality:
            queue.n_local -= 1
            self._n_local -= 1
        if not queue.count:
            del self._queues[key]
        if not self._tasks:
            self._min_cpus = self._min_mem = math.inf

    def _count_running(self, task_id: str, user: str, process: str, cpus: float, now: float) -> None:
        self._running[task_id] = (user, process, cpus, now)
        self._user_accounts.setdefault(user, _Account()).start(cpus, now)
        self._queue_accounts.setdefault((user, process), _Account()).start(cpus, now)
        self._user_cpus[user] = self._user_cpus.get(user, 0.0) + cpus
        key = (user, process)
        self._queue_cpus[key] = self._queue_cpus.get(key, 0.0) + cpus
        self._total_cpus += cpus

    def _alive(self, entry: _Entry) -> bool:
        task = entry[3]
        return self._tasks.get(task.task_id) is task

    def _maybe_compact(self) -> None:
        """Drop dead entries once they outnumber the queued tasks (amortised O(1) per removal)."""
        if self._garbage < _MIN_GARBAGE or self._garbage < len(self._tasks):
            return
        for queue in self._queues.values():
            queue.ready = self._live(queue.ready)
            queue.local = {place: live for place, heap in queue.local.items() if (live := self._live(heap))}
        self._waiting = [item for item in self._waiting if self._alive(item[1])]
        heapq.heapify(self._waiting)
        self._min_cpus = min((t.resources.cpus for t in self._tasks.values()), default=math.inf)
        self._min_mem = min((t.resources.mem for t in self._tasks.values()), default=math.inf)
        self._garbage = 0

    def _live(self, heap: list[_Entry]) -> list[_Entry]:
        live = [entry for entry in heap if self._alive(entry)]
        heapq.heapify(live)
        return live

    # Placement

    def place(self, offers: Sequence[Offer], now: float) -> PlacementResult:
        """Decide one round: which queued tasks go into which of these offers."""
        self._now = now
        self._release(now)
        result = PlacementResult()
        slots = self._slots(offers) if self._tasks else []
        if slots:
            later = _later_max(slots)
            round_ = self._start_round()
            for index, slot in enumerate(slots):
                if not round_.users:
                    break
                self._fill(slot, later[index + 1], round_, result.placements)
                self._reopen(round_)
            self._end_round(round_)
        used = {slot.offer.offer_id for slot in slots if slot.used}
        result.unused_offer_ids = [offer.offer_id for offer in offers if offer.offer_id not in used]
        return result

    def _release(self, now: float) -> None:
        """Local tasks whose delay ran out may now take any offer."""
        waiting = self._waiting
        while waiting and waiting[0][0] <= now:
            entry = heapq.heappop(waiting)[1]
            if self._alive(entry):
                task = entry[3]
                heapq.heappush(self._queues[task.user, task.process].ready, entry)

    def _slots(self, offers: Iterable[Offer]) -> list[_Slot]:
        """The round's offers, those wanted by waiting local tasks first, then the largest."""
        if not self._n_local:
            slots = [_Slot(offer, frozenset()) for offer in offers]
            slots.sort(key=lambda s: (-s.cpus, -s.mem))
            return slots
        wanted = {place for queue in self._queues.values() for place in queue.local}
        slots = [_Slot(offer, offer_places(offer)) for offer in offers]
        slots.sort(key=lambda s: (wanted.isdisjoint(s.places), -s.cpus, -s.mem))
        return slots

    def _start_round(self) -> _Round:
        """Fair-share heaps over the queues that have tasks."""
        self._lift_newcomers()
        round_ = _Round()
        turns: dict[str, _Turn] = {}
        for queue in self._queues.values():
            user = queue.key[0]
            turn = turns.get(user)
            if turn is None:
                turn = turns[user] = _Turn(user, self._policy.user_weights.get(user, 1.0))
            turn.queues.append(self._queue_key(queue))
        for turn in turns.values():
            heapq.heapify(turn.queues)
            round_.users.append(self._user_key(turn))
        heapq.heapify(round_.users)
        return round_

    def _lift_newcomers(self) -> None:
        """Users and queues waiting now that were not in the last round start level with the lowest of those
        that were (weighted), never below."""
        users = {queue.key[0] for queue in self._queues.values()}
        queues = set(self._queues)
        last_users, last_queues = self._waited
        weight_of_user = self._policy.user_weights.get
        weight_of_queue = self._policy.process_weights.get
        _lift(self._user_accounts, users - last_users, users & last_users, lambda u: weight_of_user(u, 1.0), self._now)
        _lift(self._queue_accounts, queues - last_queues, queues & last_queues, lambda q: weight_of_queue(q[1], 1.0),
              self._now)
        self._waited = (users, queues)

    def _queue_key(self, queue: _Queue) -> tuple[float, str, _Queue]:
        account = self._queue_accounts.get(queue.key)
        return ((account.service(self._now) if account else 0.0) / queue.weight, queue.process, queue)

    def _user_key(self, turn: _Turn) -> tuple[float, str, _Turn]:
        account = self._user_accounts.get(turn.user)
        return ((account.service(self._now) if account else 0.0) / turn.weight, turn.user, turn)

    def _fill(self, slot: _Slot, later: tuple[float, float, float, float], round_: _Round,
              placements: list[Placement]) -> None:
        """Put tasks into one offer, in fair-share order, until nothing more goes in."""
        users = round_.users
        max_cpu = _cap(self._policy.max_cpu)
        user_cap = self._policy.user_cap if self._policy.user_cpus else None
        user_max = _cap(self._policy.user_max_cpu)
        min_cpus, min_mem = self._min_cpus - _EPS, self._min_mem - _EPS
        while users and slot.cpus >= min_cpus and slot.mem >= min_mem:
            turn = users[0][2]
            queue = turn.queues[0][2]
            entry, heap = self._candidate(queue, slot.places)
            if heap is None:  # empty, or only local tasks waiting for other offers
                round_.sit_out(until_next_offer=queue.count > 0)
                continue
            task = entry[3]
            res = task.resources
            if user_cap is not None:
                user_max = _cap(user_cap(turn.user))
            if (self._total_cpus + res.cpus > max_cpu + _EPS
                    or self._user_cpus.get(turn.user, 0.0) + res.cpus > user_max + _EPS):
                round_.sit_out(until_next_offer=False)
            elif _fits(res, slot.cpus, slot.mem, slot.disk, slot.gpus):
                heapq.heappop(heap)
                placements.append(self._launch(task, slot))
                heapq.heapreplace(turn.queues, self._queue_key(queue))
                heapq.heapreplace(users, self._user_key(turn))
            elif _fits(res, *later):
                round_.sit_out(until_next_offer=True)
            else:
                round_.set_aside(heap)

    def _candidate(self, queue: _Queue, places: frozenset[str]) -> tuple[_Entry | None, list[_Entry] | None]:
        """The queue's first task (priority, FIFO) that may use an offer at these places, and its heap."""
        best, best_heap = None, None
        if (entry := self._top(queue.ready)) is not None:
            best, best_heap = entry, queue.ready
        if queue.n_local and places:
            local = queue.local
            if len(local) <= len(places):
                heaps = [heap for place, heap in local.items() if place in places]
            else:
                heaps = [heap for place in places if (heap := local.get(place)) is not None]
            for heap in heaps:
                entry = self._top(heap)
                if entry is not None and (best is None or entry < best):
                    best, best_heap = entry, heap
        return best, best_heap

    def _top(self, heap: list[_Entry]) -> _Entry | None:
        """The heap's first live entry, dropping dead ones on the way."""
        tasks = self._tasks
        while heap:
            task = heap[0][3]
            if tasks.get(task.task_id) is task:
                return heap[0]
            heapq.heappop(heap)
        return None

    def _launch(self, task: PendingTask, slot: _Slot) -> Placement:
        """Move a task from the queue to running, into the offer."""
        del self._tasks[task.task_id]
        self._unqueued(task)
        if task.locality:
            self._garbage += 1  # it stays in its other heaps
        slot.take(task.resources)
        self._count_running(task.task_id, task.user, task.process, task.resources.cpus, self._now)
        offer = slot.offer
        return Placement(task.task_id, offer.offer_id, offer.agent_id, offer.hostname, task.resources)

    def _reopen(self, round_: _Round) -> None:
        """Queues that sat out an offer get their turns again at the next one."""
        for turn, queue in round_.out_for_offer:
            if not turn.queues:
                heapq.heappush(round_.users, self._user_key(turn))
            heapq.heappush(turn.queues, self._queue_key(queue))
        round_.out_for_offer.clear()

    def _end_round(self, round_: _Round) -> None:
        """Tasks set aside for the round are queued as before."""
        for heap, entry in round_.aside:
            if self._alive(entry):
                heapq.heappush(heap, entry)
        self._maybe_compact()


def _lift(accounts: dict, newcomers: set, stayers: set, weight: Callable[[object], float], now: float) -> None:
    if not newcomers or not stayers:
        return
    floor = min((accounts[key].service(now) if key in accounts else 0.0) / weight(key) for key in stayers)
    for key in newcomers:
        account = accounts.setdefault(key, _Account())
        behind = floor * weight(key) - account.service(now)
        if behind > 0:
            account.settled += behind


def _cap(value: float | None) -> float:
    return math.inf if value is None else value


def _subtract(totals: dict, key: object, cpus: float) -> None:
    """Lower a running total, dropping it at zero so float error cannot build up."""
    left = totals.get(key, 0.0) - cpus
    if left > _EPS:
        totals[key] = left
    else:
        totals.pop(key, None)


def _later_max(slots: Sequence[_Slot]) -> list[tuple[float, float, float, float]]:
    """For each index, the largest of each resource over the offers from there on (untouched so far)."""
    later = [(-1.0, -1.0, -1.0, -1.0)]
    for slot in reversed(slots):
        c, m, d, g = later[-1]
        later.append((max(c, slot.cpus), max(m, slot.mem), max(d, slot.disk), max(g, slot.gpus)))
    later.reverse()
    return later
