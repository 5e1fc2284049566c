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
from dataclasses import dataclass, field
from pathlib import Path

import pywps.configuration as pywps_config

from .deployment import parse_deployers
from .locality import parse_rules

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
        "max_tasks_per_job": "1000",
        "deploy_tokens": "",  # name:token, ...: who may deploy processors (empty: nobody)
        "allowed_callback_hosts": "",  # subscriber callbacks may go to these hosts even if private
        "callback_timeout": "5",
        "callback_attempts": "3",
        "data_locality": "",  # PREFIX PLACE, ...: inputs under PREFIX live at PLACE (e.g. storage=site-a)
    },
    "local": {
        "cpus": "",
        "mem": "",
    },
    "mesos": {
        "master": "",  # host:port[,host:port] or zk://host:port[,host:port]/path
        "principal": "",
        "secret": "",
        "role": "*",
        "user": "",  # Unix user tasks run as; empty: the agent's
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
        "tls": "",  # https to the masters; empty: on when ca_file is set (an https:// master says so too)
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
    locality_rules: list[tuple[str, str]] = field(default_factory=list)
    allowed_callback_hosts: list[str] = field(default_factory=list)
    deployers: dict[str, str] = field(default_factory=dict, repr=False)  # name -> token
    callback_timeout: float = 5.0
    callback_attempts: int = 3
    # raw strings, parsed by the Mesos backend options; holds the secret, so kept out of repr
    mesos: dict[str, str] = field(default_factory=dict, repr=False)
    slurm: dict[str, str] = field(default_factory=dict)  # raw strings, parsed by the Slurm backend options
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
    _configure_pywps(parser)
    database_url = gw["database_url"] or f"sqlite:///{data_dir / 'gateway.db'}"
    try:
        return Settings(
            url=parser["server"]["url"],
            data_dir=data_dir,
            database_url=database_url,
            backend=gw["backend"],
            processors_paths=_paths(gw["processors_paths"]),
            sync_timeout=float(gw["sync_timeout"]),
            dispatcher=gw["dispatcher"],
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
            locality_rules=parse_rules(gw["data_locality"]),
            allowed_callback_hosts=[h.strip().lower() for h in gw["allowed_callback_hosts"].split(",") if h.strip()],
            callback_timeout=float(gw["callback_timeout"]),
            callback_attempts=int(gw["callback_attempts"]),
            deployers=parse_deployers(gw["deploy_tokens"]),
            mesos=dict(parser["mesos"]),
            slurm=dict(parser["slurm"]),
            cfg_files=list(cfg_files or []),
        )
    except ValueError as exc:
        raise ConfigError(f"invalid setting: {exc}") from exc


def _paths(value: str) -> list[Path]:
    return [Path(p.strip()).resolve() for p in value.replace(",", os.pathsep).split(os.pathsep) if p.strip()]


def _default_request_log(parser: configparser.ConfigParser, data_dir: Path) -> None:
    """PyWPS logs every request to ``[logging] database``. An in-memory SQLite is one
    connection shared by all server threads, whose concurrent commits fail (HTTP 500),
    so an empty or in-memory setting becomes a file in the data directory."""
    if not parser.has_section("logging"):
        parser.add_section("logging")
    database = parser["logging"].get("database", "").strip()
    if not database or database.endswith(":memory:"):
        data_dir.mkdir(parents=True, exist_ok=True)
        parser["logging"]["database"] = f"sqlite:///{data_dir / 'pywps-requests.sqlite'}"


def _configure_pywps(parser: configparser.ConfigParser) -> None:
    """PyWPS reads its own global config; give it ours, overrides included."""
    pywps_config.load_configuration([])
    for section in parser.sections():
        if not pywps_config.CONFIG.has_section(section):
            pywps_config.CONFIG.add_section(section)
        for key, value in parser[section].items():
            pywps_config.CONFIG.set(section, key, value)


def redacted(parser: configparser.ConfigParser) -> dict[str, dict[str, str]]:
    """The configuration with secrets masked, for logs and operator pages."""
    out: dict[str, dict[str, str]] = {}
    for section in parser.sections():
        out[section] = {k: ("***" if any(s in k for s in SECRET_KEYS) and v else _mask_url(v))
                        for k, v in parser[section].items()}
    return out


def _mask_url(value: str) -> str:
    """Hide a password inside a URL such as ``postgresql://user:pw@host/db``."""
    if "://" in value and "@" in value:
        scheme, rest = value.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return value
