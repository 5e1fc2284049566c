"""Which framework is offered what: the test master's allocator, after Mesos's hierarchical DRF allocator.

Every allocation cycle walks the active agents; on each, the roles are taken
in order of their dominant share divided by their weight, and within a role
the frameworks in order of their own dominant share. The first framework that
wants them gets everything left on the agent that its role may use
(unreserved resources plus those reserved for the role); what is reserved for
other roles stays for them. So several frameworks share the agents, and the
one that holds least is served first.

Refusal filters hold the resources that were declined (or left unused by an
ACCEPT), not the agent: an offer is filtered only while what the agent has
free is contained in what was refused, so resources freed since then are
offered again at once. REVIVE clears filters; SUPPRESS stops offers per role.
``offer_filters`` (minimum allocatable resources per role) and
``offer_constraints`` (attribute predicates per role) are applied as a 1.11
master applies them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .resources import SCALARS, UNRESERVED, Bag

# What the allocator offers at least (Mesos's MIN_CPUS and MIN_MEM): either is enough.
MIN_CPUS = 0.01
MIN_MEM = 32.0
DEFAULT_REFUSE_SECONDS = 5.0
MAX_REFUSE_SECONDS = 365 * 24 * 3600.0


def refuse_seconds(filters: dict[str, Any] | None) -> float:
    """``Filters.refuse_seconds`` as the master reads it: default 5 s, negative means the default, capped at
    a year."""
    value = (filters or {}).get("refuse_seconds")
    if value is None or value < 0:
        return DEFAULT_REFUSE_SECONDS
    return min(float(value), MAX_REFUSE_SECONDS)


@dataclass
class RefusalFilter:
    agent_id: str
    resources: Bag
    until: float


@dataclass
class Candidate:
    """A framework as the allocator sees it."""

    framework_id: str
    roles: Sequence[str]
    suppressed: set[str]
    filters: list[RefusalFilter]
    allocated: Bag  # its tasks' resources plus its outstanding offers
    gpu_capable: bool = False
    offer_filters: dict[str, Any] = field(default_factory=dict)
    offer_constraints: dict[str, Any] = field(default_factory=dict)


@dataclass
class AgentView:
    agent_id: str
    hostname: str
    attributes: dict[str, str]
    total: Bag
    free: Bag  # total minus tasks minus outstanding offers


@dataclass(frozen=True)
class Grant:
    framework_id: str
    agent_id: str
    role: str
    resources: Bag


class Allocator:
    """One allocation cycle at a time; ``weights`` are the roles' (default 1)."""

    def __init__(self, weights: dict[str, float] | None = None, shuffle: Callable[[list], None] | None = None):
        self.weights = dict(weights or {})
        self._shuffle = shuffle or random.shuffle

    def allocate(self, agents: Iterable[AgentView], frameworks: Sequence[Candidate], now: float) -> list[Grant]:
        agents = list(agents)
        self._shuffle(agents)
        totals = _totals(agent.total for agent in agents)
        grants: list[Grant] = []
        for agent in agents:
            free = agent.free
            for role, candidate in self._order(frameworks, totals):
                if not free:
                    break
                if candidate.framework_id in {g.framework_id for g in grants if g.agent_id == agent.agent_id
                                              and g.role == role}:
                    continue
                offered = free.for_roles([role])
                if not self._wants(candidate, role, agent, offered, now):
                    continue
                grants.append(Grant(candidate.framework_id, agent.agent_id, role, offered))
                candidate.allocated = candidate.allocated + offered
                free = free - offered
        return grants

    def _order(self, frameworks: Sequence[Candidate], totals: dict[str, float]) -> list[tuple[str, Candidate]]:
        """(role, framework) pairs: roles by weighted dominant share, frameworks within a role by theirs."""
        by_role: dict[str, list[Candidate]] = {}
        for candidate in frameworks:
            for role in candidate.roles:
                by_role.setdefault(role, []).append(candidate)
        role_share = {role: _share(sum((c.allocated for c in members), Bag()), totals) / self.weights.get(role, 1.0)
                      for role, members in by_role.items()}
        order = []
        for role in sorted(by_role, key=lambda r: (role_share[r], r)):
            for candidate in sorted(by_role[role], key=lambda c: (_share(c.allocated, totals), c.framework_id)):
                order.append((role, candidate))
        return order

    @staticmethod
    def _wants(candidate: Candidate, role: str, agent: AgentView, offered: Bag, now: float) -> bool:
        if role in candidate.suppressed or not _allocatable(offered, candidate.offer_filters.get(role)):
            return False
        if agent.total.total("gpus") > 0 and not candidate.gpu_capable:
            return False  # agents with GPUs are offered only to GPU_RESOURCES frameworks
        for refusal in candidate.filters:
            if refusal.agent_id == agent.agent_id and refusal.until > now and refusal.resources.contains(offered):
                return False
        constraints = candidate.offer_constraints.get(role)
        return constraints is None or _satisfies(constraints, agent)


def _totals(bags: Iterable[Bag]) -> dict[str, float]:
    totals = dict.fromkeys(SCALARS, 0.0)
    for bag in bags:
        for name in SCALARS:
            totals[name] += bag.total(name)
    return totals


def _share(allocated: Bag, totals: dict[str, float]) -> float:
    """The dominant share: the largest fraction of any resource of the cluster."""
    return max((allocated.total(name) / totals[name] for name in SCALARS if totals[name] > 0), default=0.0)


def _allocatable(offered: Bag, offer_filters: dict[str, Any] | None) -> bool:
    minimum = (offer_filters or {}).get("min_allocatable_resources")
    if minimum is not None:  # any one of the listed quantity sets is enough
        return any(all(offered.total(name) + 1e-9 >= (value or {}).get("value", 0.0)
                       for name, value in (quantities.get("quantities") or {}).items())
                   for quantities in minimum.get("quantities") or [{}])
    return offered.total("cpus") >= MIN_CPUS or offered.total("mem") >= MIN_MEM


def _satisfies(constraints: dict[str, Any], agent: AgentView) -> bool:
    """``OfferConstraints.RoleConstraints``: groups OR-ed, the constraints of a group AND-ed."""
    groups = constraints.get("groups") or []
    return not groups or any(all(_holds(c, agent) for c in group.get("attribute_constraints") or [])
                             for group in groups)


def _holds(constraint: dict[str, Any], agent: AgentView) -> bool:
    selector = constraint.get("selector") or {}
    pseudo = selector.get("pseudoattribute_type")
    if pseudo == "HOSTNAME":
        value: str | None = agent.hostname
    elif pseudo in ("REGION", "ZONE"):
        value = None  # test agents have no fault domain
    else:
        value = agent.attributes.get(selector.get("attribute_name", ""))
    predicate = constraint.get("predicate") or {}
    if "exists" in predicate:
        return value is not None
    if "not_exists" in predicate:
        return value is None
    if value is None:
        return False
    tests = {"text_equals": lambda p: value == p.get("value"),
             "text_not_equals": lambda p: value != p.get("value"),
             "text_matches": lambda p: re.fullmatch(p.get("regex", ""), value) is not None,
             "text_not_matches": lambda p: re.fullmatch(p.get("regex", ""), value) is None}
    return all(test(predicate[name] or {}) for name, test in tests.items() if name in predicate)


def roles_of(info: dict[str, Any], multi_role: bool) -> list[str]:
    """The roles a FrameworkInfo subscribes to."""
    if multi_role:
        return list(info.get("roles") or [])
    return [info.get("role") or UNRESERVED]
