"""A job store of any size as a gateway leaves it: jobs with their tasks, attempts, events, usage and outbox rows.

No row is made up here. A few template jobs of the shipped processors (echo;
ndvi-mosaic and urban-footprint on 1 to 4 scenes) are submitted with
``submit_job`` and run by the real ``Dispatcher`` in a scratch SQLite store,
on a scripted backend whose tasks start and end at once, each job one of four
ways: successful, successful after a retry, failed (its first task fails every
attempt), or dismissed while running. Their rows, read back from the scratch
store, are what the gateway wrote. ``fill`` then copies them as many times as
asked into the target store with INSERT ... SELECT statements on the project's
own tables (so the database does the copying, not Python): each copy gets a
new random job id (put wherever the template's id appears: task ids, attempt
ids, task documents, input URLs) and its times shifted to its own creation
time. Job number ``n`` (0 is the newest) was created ``n * SPACING`` seconds
before ``NEWEST`` (a million jobs a year), so a store grows by older history
and every size has the same newest jobs. Which template a job copies comes
from a fixed table of 1,000 slots weighted as ``SHAPES`` and ``OUTCOMES`` say.

Not copied: STAC items (only jobs whose outputs are geospatial get them, when
a catalogue is configured). Every job is final, so a dispatcher has nothing
to do on this store.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import REPO, sample_scenes
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.types import JSON

from mesos_backend import Backend, TaskEvent, TaskSpec, TaskState, Usage
from processes.descriptor import Processor, load_descriptor_file
from wps_gateway.address_policy import AddressPolicy
from wps_gateway.dispatcher import ACTIVE_ATTEMPT, Dispatcher, DispatcherOptions
from wps_gateway.inputs import RawInput, check_inputs
from wps_gateway.jobs import ResponseForm, request_dismiss, submit_job
from wps_gateway.planner import count_tasks
from wps_gateway.store.db import Store
from wps_gateway.store.models import (
    AttemptEvent,
    Job,
    JobStatus,
    JobUsage,
    Notification,
    Task,
    TaskAttempt,
    UTCDateTime,
)

NEWEST = datetime(2026, 11, 1, tzinfo=UTC)
SPACING = 31.536  # seconds between two jobs: a million a year
SLOTS = 1000
CHUNK = 50_000  # jobs per INSERT ... SELECT round (one transaction each)
# (processor, scenes or tiles given, weight): what a job of the store is.
SHAPES = (("echo", 0, 40), ("ndvi-mosaic", 1, 10), ("ndvi-mosaic", 2, 8), ("ndvi-mosaic", 3, 6),
          ("ndvi-mosaic", 4, 6), ("urban-footprint", 1, 10), ("urban-footprint", 2, 8), ("urban-footprint", 3, 6),
          ("urban-footprint", 4, 6))
OUTCOMES = (("successful", 85), ("retried", 5), ("failed", 7), ("dismissed", 3))
PROTOCOLS = ("wps1", "ogcapi", "wps2")
USERS = 500
PROCESSOR_FILES = {"echo": "echo", "ndvi-mosaic": "ndvi_mosaic", "urban-footprint": "urban_footprint"}
# The tables a job's rows live in, parents first, and how a row of each belongs to a job.
TABLES = (Job.__table__, Task.__table__, TaskAttempt.__table__, AttemptEvent.__table__, JobUsage.__table__,
          Notification.__table__)


# -- SQL the two dialects spell differently ------------------------------------------------------------


class random_uuid(FunctionElement):  # noqa: N801 - used like an SQL function
    """A random version-4 UUID as text (what ``uuid.uuid4()`` gives the gateway)."""

    type = String()
    inherit_cache = True


@compiles(random_uuid)
def _random_uuid_sqlite(element, compiler, **kw):
    def hexa(n: int) -> str:
        return f"lower(hex(randomblob({n})))"
    return (f"({hexa(4)} || '-' || {hexa(2)} || '-4' || substr({hexa(2)}, 2) || '-' || "
            f"substr('89ab', 1 + abs(random()) % 4, 1) || substr({hexa(2)}, 2) || '-' || {hexa(6)})")


@compiles(random_uuid, "postgresql")
def _random_uuid_postgresql(element, compiler, **kw):
    return "CAST(gen_random_uuid() AS TEXT)"


class shifted(FunctionElement):  # noqa: N801
    """A stored timestamp plus some seconds (NULL seconds: NULL), in the form the gateway stores times."""

    type = UTCDateTime()
    inherit_cache = True


@compiles(shifted)
def _shifted_sqlite(element, compiler, **kw):
    # SQLAlchemy keeps SQLite times as 'YYYY-MM-DD HH:MM:SS.ffffff'; strftime's %f has milliseconds.
    when, seconds = (compiler.process(arg, **kw) for arg in element.clauses)
    return (f"(CASE WHEN {seconds} IS NULL THEN NULL ELSE "
            f"strftime('%Y-%m-%d %H:%M:%f', {when}, printf('%+.3f seconds', {seconds})) || '000' END)")


@compiles(shifted, "postgresql")
def _shifted_postgresql(element, compiler, **kw):
    when, seconds = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"({when} + {seconds} * INTERVAL '1 second')"


# -- recording the templates ----------------------------------------------------------------------------


@dataclass
class Template:
    """One job's rows as the gateway wrote them: table name -> rows (raw column values; times as seconds
    after the job's creation); ``job_id`` is the id to replace in every copy."""

    number: int
    job_id: str
    weight: float
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def tasks(self) -> int:
        return len(self.rows["tasks"])


class ScriptedBackend(Backend):
    """Tasks that start and end as soon as they are launched, the way each job's outcome says.

    Events look like the local backend's (an agent, a sandbox, "pid N", usage
    measured, the last stderr line of a failure). A task that succeeds writes
    the outputs its processor declares, so that the job can succeed.
    """

    name = "local"
    tasks_survive_stop = False

    def __init__(self, sandbox_root: Path) -> None:
        self.sandbox_root = sandbox_root
        self.plans: dict[str, tuple[str, str, Processor]] = {}  # job id -> (outcome, first task id, processor)
        self._emit: Any = None
        self._pid = 40000

    def start(self, on_event) -> None:
        self._emit = on_event

    def stop(self) -> None:
        pass

    def recover(self, task_ids: list[str], hints: dict[str, dict] | None = None) -> None:
        for task_id in task_ids:
            self._emit(TaskEvent(task_id, TaskState.LOST, reason="backend_restarted"))

    def kill(self, task_id: str) -> None:
        self._emit(TaskEvent(task_id, TaskState.KILLED, reason="killed", message="killed on request",
                             usage=Usage(cpu_seconds=3.1, mem_peak_mb=150.0, wall_seconds=4.0),
                             agent=socket.gethostname()))

    def launch(self, spec: TaskSpec) -> None:
        outcome, first_task, processor = self.plans[spec.labels["job_id"]]
        self._pid += 1
        agent, sandbox = socket.gethostname(), str(self.sandbox_root / spec.task_id)
        self._emit(TaskEvent(spec.task_id, TaskState.STARTED, message=f"pid {self._pid}", agent=agent,
                             sandbox=sandbox))
        if outcome == "dismissed":
            return  # runs until the dismissal kills it
        fails = spec.labels["task_id"] == first_task and (
            outcome == "failed" or (outcome == "retried" and spec.task_id.endswith(".1")))
        usage = Usage(cpu_seconds=41.7, mem_peak_mb=388.2, wall_seconds=52.3)
        if fails:
            self._emit(TaskEvent(spec.task_id, TaskState.FINISHED, exit_code=1, usage=usage, agent=agent,
                                 sandbox=sandbox, message="ValueError: scene has no band B08 (band descriptions: "
                                                          "B02, B03, B04, B11)"))
            return
        _write_outputs(processor, json.loads(spec.environment["WPS_TASK"])["outputs_dir"])
        self._emit(TaskEvent(spec.task_id, TaskState.FINISHED, exit_code=0, usage=usage, agent=agent,
                             sandbox=sandbox))


def _write_outputs(processor: Processor, outputs_dir: str) -> None:
    for spec in processor.outputs:
        path = Path(outputs_dir) / (spec.file or spec.id)
        if spec.is_complex:
            path.write_bytes(b"<result/>")
        elif spec.is_bbox:
            path.write_text(json.dumps({"bbox": [5.9, 45.8, 10.5, 47.8]}))
        else:
            path.write_text("0.4213" if spec.literal_type in ("number", "integer") else "hello")


def _inputs(processor: Processor, scenes: list[Path], count: int) -> dict[str, list[RawInput]]:
    if processor.id == "echo":
        return {"literalInput": [RawInput(value="hello")],
                "complexInput": [RawInput(value="<doc><a>1</a></doc>", media_type="text/xml")]}
    split = processor.steps[0].split_input
    return {split: [RawInput(href=path.as_uri()) for path in scenes[:count]]}


def record_templates(workdir: Path) -> list[Template]:
    """Run one job of every shape and outcome through the real submit and dispatcher; return their rows."""
    store = Store(f"sqlite:///{workdir / 'templates.db'}")
    store.upgrade()
    scenes = sample_scenes(workdir / "sample-data")
    jobs_dir = workdir / "jobs"
    backend = ScriptedBackend(workdir / "sandboxes")
    dispatcher = Dispatcher(store, backend, DispatcherOptions(jobs_dir=jobs_dir, retry_backoff=0.0))
    dispatcher.start()
    policy = AddressPolicy(allowed_paths=[scenes[0].parent.resolve()])
    total = sum(w for *_, w in SHAPES) * sum(w for _, w in OUTCOMES)
    made: list[tuple[str, str, float]] = []  # (job id, outcome, weight)
    for number, ((process, count, shape_weight), (outcome, outcome_weight)) in enumerate(
            (shape, outcome) for shape in SHAPES for outcome in OUTCOMES):
        processor = load_descriptor_file(REPO / "processes" / PROCESSOR_FILES[process] / "descriptor.yaml")
        checked = check_inputs(processor, _inputs(processor, scenes, count), policy)
        job = submit_job(store, jobs_dir, processor, checked, ResponseForm(asynchronous=True),
                         protocol=PROTOCOLS[number % len(PROTOCOLS)], task_count=count_tasks(processor, checked.values))
        backend.plans[job.id] = (outcome, f"{job.id}.{processor.steps[0].id}.0", processor)
        made.append((job.id, outcome, shape_weight * outcome_weight / total))
    _turn_until(dispatcher, store, [job_id for job_id, outcome, _ in made if outcome != "dismissed"])
    dismissed = [job_id for job_id, outcome, _ in made if outcome == "dismissed"]
    for job_id in dismissed:
        request_dismiss(store, job_id)
    _turn_until(dispatcher, store, dismissed)
    dispatcher.backend.stop()
    templates = [Template(number, job_id, weight) for number, (job_id, _, weight) in enumerate(made)]
    with store.engine.connect() as connection:
        for template in templates:
            template.rows = _rows_of(connection, template.job_id)
    store.dispose()
    return templates


def _turn_until(dispatcher: Dispatcher, store: Store, job_ids: list[str]) -> None:
    """Dispatcher turns until every one of ``job_ids`` is final and none of their attempts is still active.

    A dismissed job is final as soon as the dismissal is committed; its killed attempts end a turn or two
    later. A template copied before then would leave every copy with attempts "running" for ever, and a
    dispatcher started on the store would spend its turns recovering them instead of idling.
    """
    for _ in range(200):
        dispatcher.run_once()
        with store.sessions() as session:
            statuses = session.scalars(select(Job.status).where(Job.id.in_(job_ids))).all()
            active = session.scalar(select(func.count()).select_from(TaskAttempt).join(Task).where(
                Task.job_id.in_(job_ids), TaskAttempt.status.in_(ACTIVE_ATTEMPT)))
        if all(status in JobStatus.FINAL for status in statuses) and not active:
            return
    raise RuntimeError(f"template jobs not final after 200 turns: {statuses}, {active} attempt(s) active")


def _rows_of(connection: Connection, job_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of one job, raw as SQLite keeps them (JSON as its text), times as seconds after its creation."""
    created = _time(connection.exec_driver_sql("SELECT created FROM jobs WHERE id = ?", (job_id,)).scalar_one())
    where = {"jobs": "id = ?", "tasks": "job_id = ?", "job_usage": "job_id = ?", "notifications": "job_id = ?",
             "task_attempts": "task_id IN (SELECT id FROM tasks WHERE job_id = ?)",
             "attempt_events": "attempt_id IN (SELECT a.id FROM task_attempts a JOIN tasks t ON a.task_id = t.id "
                               "WHERE t.job_id = ?)"}
    rows: dict[str, list[dict[str, Any]]] = {}
    for table in TABLES:
        result = connection.exec_driver_sql(f"SELECT * FROM {table.name} WHERE {where[table.name]} ORDER BY 1",
                                            (job_id,))
        rows[table.name] = [dict(row._mapping) for row in result]
        for row in rows[table.name]:
            for column in table.columns:
                if isinstance(column.type, UTCDateTime) and row[column.name] is not None:
                    row[column.name] = round((_time(row[column.name]) - created).total_seconds(), 3)
    keys = {row["id"]: row["backend_task_id"] for row in rows["task_attempts"]}
    for event in rows["attempt_events"]:
        event["attempt_key"] = keys[event.pop("attempt_id")]
    return rows


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- copying them ------------------------------------------------------------------------------------------


def _copied_columns(table: Table) -> list[Column]:
    """The columns a copy sets: all but generated integer keys."""
    return [c for c in table.columns if not (c.primary_key and isinstance(c.type, Integer))]


def _template_column(column: Column) -> Column:
    """How a template table keeps a column: times as seconds after the job's creation, JSON as its text."""
    if isinstance(column.type, UTCDateTime):
        return Column(column.name, Float)
    if isinstance(column.type, (JSON, String)):
        return Column(column.name, Text)
    return Column(column.name, column.type.__class__())


class StoreFiller:
    """Copies the templates into one store; ``fill(start, stop)`` adds jobs number ``start`` to ``stop - 1``."""

    def __init__(self, store: Store, templates: list[Template]) -> None:
        self.store = store
        self.templates = templates
        self.dialect = store.engine.dialect.name
        self.meta = MetaData()
        self.slots = Table("bench_slots", self.meta, Column("slot", Integer, primary_key=True),
                           Column("tpl", Integer), prefixes=["TEMPORARY"])
        self.batch = Table("bench_jobs", self.meta, Column("n", BigInteger, primary_key=True),
                           Column("id", String(36)), Column("tpl", Integer), Column("created", UTCDateTime()),
                           Column("user", String(128)), Column("group", String(128)), prefixes=["TEMPORARY"])
        self.seconds: dict[str, float] = {}  # time spent copying into each table, all rounds so far
        self.copies: dict[str, Table] = {}
        for table in TABLES:
            columns = [_template_column(c) for c in _copied_columns(table) if c.name != "attempt_id"]
            if table.name == "attempt_events":
                columns.append(Column("attempt_key", Text))  # its attempt's backend_task_id
            self.copies[table.name] = Table(f"bench_tpl_{table.name}", self.meta, Column("tpl", Integer, index=True),
                                            Column("tpl_job", Text), *columns, prefixes=["TEMPORARY"])
        # Text columns in which some template names its job: the copy puts its own id there.
        self.with_id = {name: {column for t in templates for row in t.rows[name] for column, value in row.items()
                               if isinstance(value, str) and t.job_id in value} for name in self.copies}

    def fill(self, start: int, stop: int) -> None:
        """Add jobs ``start`` .. ``stop - 1`` (in rounds of ``CHUNK``, each its own transaction)."""
        with self.store.engine.connect() as connection:
            if self.dialect == "sqlite":
                connection.exec_driver_sql("PRAGMA cache_size = -1000000")  # 1 GB: the indexes stay in memory
            self._load_templates(connection)
            connection.commit()
            for low in range(start, stop, CHUNK):
                self._copy(connection, low, min(stop, low + CHUNK))
                connection.commit()
            self.meta.drop_all(connection)
            connection.commit()

    def _load_templates(self, connection: Connection) -> None:
        self.meta.create_all(connection)
        for template in self.templates:
            for name, rows in template.rows.items():
                table = self.copies[name]
                if rows:
                    connection.execute(insert(table), [
                        {"tpl": template.number, "tpl_job": template.job_id,
                         **{c.name: _value(c, row[c.name]) for c in table.columns if c.name not in ("tpl", "tpl_job")}}
                        for row in rows])
        connection.execute(insert(self.slots), [{"slot": slot, "tpl": tpl} for slot, tpl in enumerate(self._slots())])

    def _slots(self) -> list[int]:
        """SLOTS template numbers, each as many times as its weight says (largest remainders round)."""
        exact = [t.weight * SLOTS for t in self.templates]
        counts = [int(x) for x in exact]
        for i in sorted(range(len(exact)), key=lambda i: exact[i] - counts[i], reverse=True)[:SLOTS - sum(counts)]:
            counts[i] += 1
        return [t.number for t, count in zip(self.templates, counts, strict=True) for _ in range(count)]

    def _copy(self, connection: Connection, low: int, high: int) -> None:
        batch = self.batch
        connection.execute(delete(batch))
        series = select(cast(literal(low), BigInteger).label("n")).cte("series", recursive=True)
        series = series.union_all(select(series.c.n + 1).where(series.c.n < high - 1))
        users = series.c.n * 7 % USERS
        connection.execute(insert(batch).from_select(
            ["n", "id", "tpl", "created", "user", "group"],
            select(series.c.n, random_uuid(), self.slots.c.tpl,
                   shifted(literal(NEWEST, UTCDateTime()), series.c.n * -SPACING),
                   literal("user") + cast(users, String), literal("group") + cast(users % 20, String))
            .join_from(series, self.slots, self.slots.c.slot == series.c.n * 7919 % SLOTS)))
        for table in TABLES:
            started = time.perf_counter()
            connection.execute(self._copy_statement(table))
            self.seconds[table.name] = self.seconds.get(table.name, 0.0) + time.perf_counter() - started

    def _copy_statement(self, table: Table):
        """INSERT INTO table SELECT the templates' rows with this round's job ids and times."""
        batch, source = self.batch, self.copies[table.name]
        columns = _copied_columns(table)
        overrides = {"user": batch.c.user, "group": batch.c.group, "client": batch.c.user,
                     "created": batch.c.created} if table.name == "jobs" else {}
        attempts = TaskAttempt.__table__
        values = [overrides[c.name] if c.name in overrides
                  else attempts.c.id if c.name == "attempt_id" and table.name == "attempt_events"
                  else self._value(c, source, table.name) for c in columns]
        query = select(*values).join_from(batch, source, source.c.tpl == batch.c.tpl)
        if table.name == "attempt_events":
            query = query.join(attempts, attempts.c.backend_task_id == func.replace(source.c.attempt_key,
                                                                                  source.c.tpl_job, batch.c.id))
        return insert(table).from_select([c.name for c in columns], query.order_by(batch.c.n))

    def _value(self, column: Column, source: Table, table_name: str):
        value = source.c[column.name]
        if isinstance(column.type, UTCDateTime):
            return shifted(self.batch.c.created, value)
        if column.name in self.with_id[table_name]:
            value = func.replace(value, source.c.tpl_job, self.batch.c.id)
        if isinstance(column.type, JSON) and self.dialect == "postgresql":
            value = cast(value, JSON)
        return value


def _value(column: Column, value: Any) -> Any:
    return bool(value) if isinstance(column.type, Boolean) and value is not None else value


def job_ids(store: Store, ordinals: list[int]) -> list[str]:
    """The ids of jobs number ``ordinals`` (0 is the newest), found by their creation time (an index range)."""
    jobs = Job.__table__
    with store.engine.connect() as connection:
        return [connection.execute(select(jobs.c.id).where(jobs.c.created <= _created(n))
                                   .order_by(jobs.c.created.desc()).limit(1)).scalar_one() for n in ordinals]


def _created(n: int) -> datetime:
    return NEWEST - timedelta(seconds=n * SPACING - 0.01)


def describe(templates: list[Template]) -> str:
    """Rows per job on average, for the README's description of the stores."""
    weights = sum(t.weight for t in templates)
    mean = {name: sum(t.weight * len(t.rows[name]) for t in templates) / weights for name in templates[0].rows}
    return ", ".join(f"{value:.2f} {name}" for name, value in mean.items())
