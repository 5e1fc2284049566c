"""Configuration: ``pywps.cfg`` plus environment overrides.

Every setting ``[section] key`` can be overridden by the environment variable
``SECTION_KEY`` in upper case, a colon read as an underscore
(``GATEWAY_DATABASE_URL``, ``SERVER_URL``, ``METADATA_MAIN_PROVIDER_NAME``),
as container deployments expect. The gateway's own sections sit beside
PyWPS's in the same file; PyWPS is handed its sections with the overrides
applied.
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pywps.configuration as pywps_config

from .accounting.billing import parse_weights
from .auth.settings import DEFAULTS as AUTH_DEFAULTS
from .auth.settings import AuthSettings, parse_auth
from .console.settings import DEFAULTS as CONSOLE_DEFAULTS
from .console.settings import ConsoleSettings, parse_console
from .deployment import parse_deployers
from .gc import parse_retention
from .limits import ClientLimits
from .locality import parse_rules
from .pywps_settings import configure_pywps
from .redaction import redact
from .sources.settings import SourceSettings, parse_sources
from .stac.settings import DEFAULTS as CATALOGUE_DEFAULTS
from .stac.settings import CatalogueSettings, parse_catalogue

DEFAULT_CFG = Path(__file__).resolve().parent.parent / "pywps.cfg"
CFG_ENV = "PYWPS_CFG"
SECRET_KEYS = ("password", "secret", "token")

# The gateway's settings with their defaults; this table is also the README's.
DEFAULTS: dict[str, dict[str, str]] = {
    "server": {
        "url": "http://127.0.0.1:5000/wps",
        "maxrequestsize": "3mb",
        "language": "en-US",
    },
    "gateway": {
        "data_dir": "var",
        "database_url": "",  # empty: sqlite in data_dir
        "backend": "local",
        "processors_paths": "",
        "sync_timeout": "60",
        "dispatcher": "embedded",  # embedded | external
        "poll_interval": "0.25",
        "retry_backoff": "2",
        "retry_backoff_max": "60",
        "allowed_input_paths": "var/sample-data",
        "allowed_input_hosts": "",
        "input_max_size": "2gb",  # largest input a task downloads: 2gb, 512mb, 100kb or bytes
        "input_connect_timeout": "10",  # seconds a task's download may take to connect
        "input_read_timeout": "60",  # seconds a download may wait for the next bytes
        "input_max_redirects": "5",  # redirects a download follows (each hop checked); 0: none
        "max_tasks_per_job": "1000",
        "deploy_tokens": "",  # name:token, ...: who may deploy processors (empty: nobody)
        "allowed_callback_hosts": "",  # subscriber callbacks may go to these hosts even if private
        "callback_timeout": "5",
        "callback_attempts": "3",
        "data_locality": "",  # PREFIX PLACE, ...: inputs under PREFIX live at PLACE (e.g. storage=site-a)
        "reconcile_interval": "30",  # seconds between checks of the store against what the backend runs
        "shutdown_grace": "10",  # seconds local tasks may take to end on SIGTERM before they are stopped
        "sync_max_waiting": "4",  # synchronous Executes that may wait at once (keep below serve --threads)
        "retention": "",  # status:duration, ...: see wps_gateway/gc.py; empty: the defaults there
        "client_max_jobs": "1000",  # jobs accepted or running per client (user, or address); 0: no limit
        "client_max_tasks": "10000",  # tasks of those jobs per client; 0: no limit
        "client_max_sync": "2",  # synchronous Executes one client may have waiting at once; 0: no limit
    },
    "local": {
        "cpus": "",
        "mem": "",
        "gpus": "0",  # GPU slots; tasks get CUDA_VISIBLE_DEVICES naming theirs
        "run_as": "",  # user[:group] tasks run as (the gateway must be root); empty: the gateway's user
        "environment": "",  # NAME=value or NAME (passed from the gateway's environment), comma-separated
    },
    "accounting": {
        "billing_weights": "cpu:1",  # resource:weight, ...: what the report's billing figure charges (Slurm-like)
    },
    "mesos": {
        "master": "",  # host:port[,host:port] or zk://host:port[,host:port]/path
        "principal": "",
        "secret": "",
        "role": "*",
        "user": "",  # Unix user tasks run as; empty: the user the gateway runs as
        "framework_name": "wps-gateway",
        "failover_timeout": "604800",  # a week: tasks survive a gateway outage this long
        "checkpoint": "true",
        "gpus": "false",  # GPU_RESOURCES capability
        "task_image": "",  # empty: the processor's executionUnit.image
        "containerizer": "mesos",  # mesos (UCR with a Docker image) | docker | none
        "volumes": "",  # host_path:container_path[:ro|rw], comma-separated
        "task_cpu": "",  # floor of cpus per task; empty: as the step says
        "task_mem": "",  # floor of mem (MiB) per task
        "max_cpu": "0",  # cpus in use by the framework at most; 0: no cap
        "user_max_cpu": "0",  # cpus per user at most; 0: no cap
        "process_weights": "",  # fair share between processes: name:weight, ... (default 1 each)
        "user_weights": "",  # fair share between users: name:weight, ...
        "offer_refuse_seconds": "5",
        "locality_delay": "5",  # seconds a task waits for an offer near its data
        "unreachable_timeout": "60",  # seconds before an unreachable task is rerun elsewhere
        "reconcile_interval": "600",
        "oversize_grace": "30",  # seconds before a task bigger than every agent seen fails
        "tls": "",  # https to the masters; empty: on when ca_file is set (an https:// master says so too)
        "tls_verify": "true",
        "ca_file": "",
    },
    "yarn": {
        "resource_manager": "",  # host:port[,host:port]: the ResourceManagers (HA: the active one is found)
        "user": "",  # simple auth: user.name of every call; applications run as this user
        "auth": "simple",  # simple | kerberos (SPNEGO; the yarn-kerberos extra)
        "queue": "default",
        "priority": "0",  # added to the job's priority
        "application_type": "WPS",
        "application_tag": "wps-gateway",  # unique per gateway: its applications are found (and orphans killed) by it
        "am_jar": "",  # DistributedShell's jar: hdfs://... or file://...
        "am_command": "",  # a site's own ApplicationMaster instead: a command template
        "am_memory": "512",
        "am_vcores": "1",
        "am_java_opts": "-Xmx256m",
        "am_classpath": "",  # empty: yarn.application.classpath's default after ./*
        "staging_dir": "",  # hdfs:// or file:// directory for the task command files; empty: data_dir/yarn
        "webhdfs": "",  # the NameNode's HTTP address(es), for hdfs:// resources
        "results_dir": "",  # hdfs:// directory for the output files of jobs (served through WebHDFS); empty: data_dir
        "task_cpu": "",  # floor of vcores per task
        "task_mem": "",  # floor of memory (MB) per task
        "max_cpu": "0",  # vcores of this gateway's tasks at most; 0: no cap
        "max_pending": "50",  # applications submitted and not running yet, at most
        "poll_interval": "1",  # seconds between status polls (one RM call for all tasks)
        "locality_label": "",  # a locality hint NAME=VALUE with this NAME becomes node label VALUE
        "tls": "",  # https to the ResourceManagers and NameNodes; empty: on when ca_file is set
        "tls_verify": "true",
        "ca_file": "",
    },
    "slurm": {
        "partition": "",  # empty: the cluster's default partition
        "account": "",
        "qos": "",
        "sbatch_args": "",  # more sbatch options for every job, e.g. --constraint=eo --reservation=wps
        "container_prefix": "",  # before the command of a task with an image, e.g. srun apptainer exec docker://{image}
        "task_image": "",  # empty: the processor's executionUnit.image
        "task_path": "",  # PATH of the tasks; empty: the gateway's virtualenv bin, then /usr/local/bin:/usr/bin:/bin
        "poll_interval": "1",  # seconds between squeue calls (one per turn for all jobs)
        "accounting": "auto",  # auto: usage from sacct when slurmdbd answers; off: wall time only
        "submit_workers": "4",  # sbatch calls at once
        "command_timeout": "30",  # seconds a Slurm command may take
        "bin_dir": "",  # folder of sbatch, squeue, scancel, sacct; empty: PATH
        "conf": "",  # slurm.conf of the cluster (SLURM_CONF); empty: Slurm's default
    },
}

DEFAULTS["auth"] = dict(AUTH_DEFAULTS)
DEFAULTS["console"] = dict(CONSOLE_DEFAULTS)
# PyWPS's section; the gateway reads its ``format``: text, json, or a logging format string (PyWPS's file log).
# ``database`` empty: PyWPS's request log off (a config file need not name it).
DEFAULTS["logging"] = {"format": "text", "database": ""}
DEFAULTS["catalogue"] = dict(CATALOGUE_DEFAULTS)

# Names that existing Mesos schedulers use, accepted beside SECTION_KEY.
ENV_ALIASES: dict[str, tuple[str, str]] = {
    "TASK_IMAGE": ("mesos", "task_image"),
    "TASK_CPU": ("mesos", "task_cpu"),
    "TASK_MEM": ("mesos", "task_mem"),
    "MAX_CPU": ("mesos", "max_cpu"),
    "OFFER_REFUSE_SECONDS": ("mesos", "offer_refuse_seconds"),
}


@dataclass
class Settings:
    """Typed view of the settings the gateway uses."""

    url: str
    data_dir: Path
    database_url: str
    backend: str
    processors_paths: list[Path]
    sync_timeout: float
    dispatcher: str
    poll_interval: float
    retry_backoff: float
    retry_backoff_max: float
    allowed_input_paths: list[Path]
    allowed_input_hosts: list[str]
    max_request_bytes: int
    max_tasks_per_job: int
    local_cpus: float | None
    local_mem: float | None
    local_gpus: int = 0
    local_run_as: str = ""
    local_environment: dict[str, str] = field(default_factory=dict, repr=False)
    locality_rules: list[tuple[str, str]] = field(default_factory=list)
    allowed_callback_hosts: list[str] = field(default_factory=list)
    deployers: dict[str, bytes] = field(default_factory=dict, repr=False)  # name -> SHA-256 of the token
    callback_timeout: float = 5.0
    callback_attempts: int = 3
    reconcile_interval: float = 30.0
    shutdown_grace: float = 10.0
    sync_max_waiting: int = 4
    retention: dict[str, timedelta | None] = field(default_factory=dict)
    client_limits: ClientLimits = field(default_factory=ClientLimits)
    auth: AuthSettings = field(default_factory=AuthSettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    log_format: str = "text"  # text | json | a logging format string ([logging] format)
    input_max_bytes: int = 2 * 1024**3
    input_connect_timeout: float = 10.0
    input_read_timeout: float = 60.0
    input_max_redirects: int = 5
    billing_weights: dict[str, float] = field(default_factory=lambda: {"cpu": 1.0})
    catalogue: CatalogueSettings = field(default_factory=CatalogueSettings)  # STAC items: push, asset hrefs
    request_log: str = field(default="", repr=False)  # [logging] database: PyWPS's request log; empty: none
    # raw strings, parsed by the Mesos backend options; holds the secret, so kept out of repr
    mesos: dict[str, str] = field(default_factory=dict, repr=False)
    yarn: dict[str, str] = field(default_factory=dict, repr=False)  # raw strings, parsed by the YARN backend options
    slurm: dict[str, str] = field(default_factory=dict)  # raw strings, parsed by the Slurm backend options
    sources: list[SourceSettings] = field(default_factory=list, repr=False)  # [sources]: URLs may hold credentials
    cfg_files: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        """The service root, the WPS endpoint's parent (``…/wps`` → ``…``)."""
        url = self.url.rstrip("/")
        return url[: -len("/wps")] if url.endswith("/wps") else url

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def sandbox_dir(self) -> Path:
        return self.data_dir / "sandboxes"

    @property
    def cache_dir(self) -> Path:
        """The local backend's fetch cache (unpacked processor bundles)."""
        return self.data_dir / "fetch-cache"


class ConfigError(ValueError):
    """A setting has a value the gateway cannot use."""


def read_config(cfg_files: list[str] | None = None, environ: dict[str, str] | None = None
                ) -> configparser.ConfigParser:
    """Defaults, then the cfg files, then ``SECTION_KEY`` environment variables."""
    environ = os.environ if environ is None else environ
    if cfg_files is None:
        cfg_files = [environ[CFG_ENV]] if environ.get(CFG_ENV) else [str(DEFAULT_CFG)]
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_dict(DEFAULTS)
    for path in cfg_files:
        if not parser.read(path):
            raise ConfigError(f"configuration file {path} cannot be read")
    for section in parser.sections():
        for key in list(parser[section]) + list(DEFAULTS.get(section, {})):
            name = f"{section}_{key}".upper().replace(":", "_")
            if name in environ:
                parser[section][key] = environ[name]
    for name, (section, key) in ENV_ALIASES.items():
        if name in environ and f"{section}_{key}".upper() not in environ:
            parser[section][key] = environ[name]
    return parser


def load_settings(cfg_files: list[str] | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read the configuration, hand PyWPS its part, and return the gateway's settings."""
    parser = read_config(cfg_files, environ)
    gw = parser["gateway"]
    data_dir = Path(gw["data_dir"]).resolve()
    _default_request_log(parser, data_dir)
    _default_provider_urls(parser)
    configure_pywps(parser)
    database_url = gw["database_url"] or f"sqlite:///{data_dir / 'gateway.db'}"
    try:
        return Settings(
            url=parser["server"]["url"],
            data_dir=data_dir,
            database_url=database_url,
            backend=gw["backend"],
            processors_paths=_paths(gw["processors_paths"]),
            sync_timeout=float(gw["sync_timeout"]),
            dispatcher=_one_of(gw["dispatcher"], ("embedded", "external"), "[gateway] dispatcher"),
            poll_interval=float(gw["poll_interval"]),
            retry_backoff=float(gw["retry_backoff"]),
            retry_backoff_max=float(gw["retry_backoff_max"]),
            allowed_input_paths=_paths(gw["allowed_input_paths"]),
            allowed_input_hosts=[h.strip().lower() for h in gw["allowed_input_hosts"].split(",")
                                 if h.strip()],
            max_request_bytes=int(pywps_config.get_size_mb(parser["server"]["maxrequestsize"]) * 1024 * 1024),
            max_tasks_per_job=int(gw["max_tasks_per_job"]),
            local_cpus=float(parser["local"]["cpus"]) if parser["local"]["cpus"] else None,
            local_mem=float(parser["local"]["mem"]) if parser["local"]["mem"] else None,
            local_gpus=_count(parser["local"]["gpus"], "[local] gpus", least=0),
            local_run_as=parser["local"]["run_as"].strip(),
            local_environment=task_environment_setting(parser["local"]["environment"],
                                                       os.environ if environ is None else environ),
            locality_rules=parse_rules(gw["data_locality"]),
            allowed_callback_hosts=[h.strip().lower() for h in gw["allowed_callback_hosts"].split(",") if h.strip()],
            callback_timeout=float(gw["callback_timeout"]),
            callback_attempts=int(gw["callback_attempts"]),
            reconcile_interval=_positive(gw["reconcile_interval"], "[gateway] reconcile_interval"),
            shutdown_grace=_at_least_zero(gw["shutdown_grace"], "[gateway] shutdown_grace"),
            sync_max_waiting=_count(gw["sync_max_waiting"], "[gateway] sync_max_waiting"),
            retention=parse_retention(gw["retention"]),
            client_limits=ClientLimits(max_jobs=_count(gw["client_max_jobs"], "[gateway] client_max_jobs", least=0),
                                       max_tasks=_count(gw["client_max_tasks"], "[gateway] client_max_tasks", least=0),
                                       max_sync=_count(gw["client_max_sync"], "[gateway] client_max_sync", least=0)),
            input_max_bytes=_size_bytes(gw["input_max_size"], "[gateway] input_max_size"),
            input_connect_timeout=_positive(gw["input_connect_timeout"], "[gateway] input_connect_timeout"),
            input_read_timeout=_positive(gw["input_read_timeout"], "[gateway] input_read_timeout"),
            input_max_redirects=_count(gw["input_max_redirects"], "[gateway] input_max_redirects", least=0),
            deployers=parse_deployers(gw["deploy_tokens"]),
            auth=parse_auth(parser["auth"]),
            console=parse_console(parser["console"], _size_bytes),
            log_format=_log_format(parser["logging"].get("format", "text")),
            billing_weights=parse_weights(parser["accounting"]["billing_weights"]),
            catalogue=parse_catalogue(parser["catalogue"]),
            request_log=parser["logging"]["database"].strip(),
            mesos=dict(parser["mesos"]),
            yarn=dict(parser["yarn"]),
            slurm=dict(parser["slurm"]),
            sources=parse_sources(parser, os.environ if environ is None else environ),
            cfg_files=list(cfg_files or []),
        )
    except ValueError as exc:
        raise ConfigError(f"invalid setting: {exc}") from exc


def _one_of(text: str, choices: tuple[str, ...], where: str) -> str:
    value = text.strip().lower()
    if value not in choices:
        raise ValueError(f"{where} must be {' or '.join(choices)}, not {text!r}")
    return value


def task_environment_setting(text: str, environ: dict[str, str] | os._Environ) -> dict[str, str]:
    """``NAME=value, NAME, ...``: variables every local task gets; a bare NAME passes the gateway's own value
    (an explicit choice: nothing of the gateway's environment reaches a task otherwise)."""
    out: dict[str, str] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        name, has_value, value = entry.partition("=")
        name = name.strip()
        if not name.replace("_", "a").isalnum() or name[:1].isdigit():
            raise ValueError(f"[local] environment: {name!r} is not a variable name")
        if has_value:
            out[name] = value.strip()
        elif name in environ:
            out[name] = environ[name]
    return out


def _positive(value: str, name: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
    return number


def _count(value: str, name: str, least: int = 1) -> int:
    try:
        number = int(value)
    except ValueError:
        number = least - 1
    if number < least:
        raise ValueError(f"{name} must be a whole number of {least} or more, not {value!r}")
    return number


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(b|kb?|mb?|gb?)?\s*", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3, "gb": 1024**3}


def _size_bytes(value: str, name: str) -> int:
    """A size such as ``2gb``, ``512mb``, ``100kb`` or a number of bytes, in bytes."""
    match = _SIZE.fullmatch(value)
    number = int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower() or None]) if match else 0
    if number < 1:
        raise ValueError(f"{name} must be a positive size such as 2gb, 512mb or 100kb, not {value!r}")
    return number


def _log_format(value: str) -> str:
    """``text`` or ``json`` for the gateway's own log lines; a format string with ``%(`` is PyWPS's own."""
    text = value.strip()
    if text.lower() in ("text", "json", ""):
        return text.lower() or "text"
    if "%(" in text:
        return "text"
    raise ValueError(f"[logging] format must be text or json (or a logging format string), not {value!r}")


def _at_least_zero(value: str, name: str) -> float:
    number = float(value)
    if not number >= 0:
        raise ValueError(f"{name} must be zero or more seconds, not {value!r}")
    return number


def _paths(value: str) -> list[Path]:
    return [Path(p.strip()).resolve() for p in value.replace(",", os.pathsep).split(os.pathsep) if p.strip()]


def _default_request_log(parser: configparser.ConfigParser, data_dir: Path) -> None:
    """PyWPS's request log (``[logging] database``) is off when empty: the job store is the record. An
    in-memory SQLite is one connection shared by all server threads, whose concurrent commits fail, so
    it becomes a file in the data directory."""
    if not parser.has_section("logging"):
        parser.add_section("logging")
    database = parser["logging"].get("database", "").strip()
    if database.endswith(":memory:"):
        data_dir.mkdir(parents=True, exist_ok=True)
        parser["logging"]["database"] = f"sqlite:///{data_dir / 'pywps-requests.sqlite'}"


def _default_provider_urls(parser: configparser.ConfigParser) -> None:
    """Capabilities name the provider's and the contact's site; unset, both are this service's landing
    page (under ``[server] url``, wherever the gateway is served), never a fixed address."""
    if not parser.has_section("metadata:main"):
        parser.add_section("metadata:main")
    url = parser["server"]["url"].rstrip("/")
    landing = (url[: -len("/wps")] if url.endswith("/wps") else url) + "/"
    for key in ("provider_url", "contact_url"):
        if not parser["metadata:main"].get(key, "").strip():
            parser["metadata:main"][key] = landing


def redacted(parser: configparser.ConfigParser) -> dict[str, dict[str, str]]:
    """The configuration with secrets masked, for logs and operator pages."""
    out: dict[str, dict[str, str]] = {}
    for section in parser.sections():
        out[section] = {k: ("***" if any(s in k for s in SECRET_KEYS) and v else redact(v))
                        for k, v in parser[section].items()}
    return out
