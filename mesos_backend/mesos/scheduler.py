"""The framework's callbacks, shaped like pymesos's ``Scheduler``.

Readers who know pymesos (or the old libmesos Python bindings) find the same
method names and arguments here; messages are plain dicts in the Mesos JSON
shape (``offer["id"]["value"]``). Every method is optional: the base class
does nothing. The driver calls them from its event thread, one at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .driver import MesosSchedulerDriver


class Scheduler:
    """Override what the framework cares about."""

    def registered(self, driver: MesosSchedulerDriver, framework_id: dict[str, str],
                   master_info: dict[str, Any]) -> None:
        """First subscription: the master assigned ``framework_id``; keep it to re-subscribe later."""

    def reregistered(self, driver: MesosSchedulerDriver, master_info: dict[str, Any]) -> None:
        """Re-subscribed with the known framework id (after a disconnect or a leader change)."""

    def disconnected(self, driver: MesosSchedulerDriver) -> None:
        """The event stream ended; the driver is reconnecting. Outstanding offers are void."""

    def processHeartBeat(self, driver: MesosSchedulerDriver) -> None:  # noqa: N802 (pymesos's name)
        """A HEARTBEAT event arrived."""

    def resourceOffers(self, driver: MesosSchedulerDriver, offers: list[dict[str, Any]]) -> None:  # noqa: N802
        """Offers to accept (``launchTasks``) or decline (``declineOffer``)."""

    def inverseOffers(self, driver: MesosSchedulerDriver, offers: list[dict[str, Any]]) -> None:  # noqa: N802
        """Maintenance asks the framework to leave some agents."""

    def offerRescinded(self, driver: MesosSchedulerDriver, offer_id: dict[str, str]) -> None:  # noqa: N802
        """The offer is no longer valid; tasks launched with it come back TASK_DROPPED."""

    def inverseOfferRescinded(self, driver: MesosSchedulerDriver, offer_id: dict[str, str]) -> None:  # noqa: N802
        """An inverse offer was withdrawn."""

    def statusUpdate(self, driver: MesosSchedulerDriver, update: dict[str, Any]) -> None:  # noqa: N802
        """A TaskStatus. With implicit acknowledgements the driver acknowledges it after this returns."""

    def operationStatus(self, driver: MesosSchedulerDriver, status: dict[str, Any]) -> None:  # noqa: N802
        """An OperationStatus of an offer operation sent with an id (RESERVE, CREATE, ...). With implicit
        acknowledgements the driver acknowledges it after this returns."""

    def frameworkMessage(self, driver: MesosSchedulerDriver, executor_id: dict[str, str],  # noqa: N802
                         agent_id: dict[str, str], message: bytes) -> None:
        """A message from a custom executor."""

    def slaveLost(self, driver: MesosSchedulerDriver, agent_id: dict[str, str]) -> None:  # noqa: N802
        """An agent was removed or became unreachable."""

    def executorLost(self, driver: MesosSchedulerDriver, executor_id: dict[str, str],  # noqa: N802
                     agent_id: dict[str, str], status: int | None) -> None:
        """A custom executor exited."""

    def error(self, driver: MesosSchedulerDriver, message: str) -> None:
        """The master refused or removed the framework; the driver has stopped."""
