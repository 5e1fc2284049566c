"""TaskSpec -> the ResourceManager's application submission context (JSON).

One application per task attempt. By default its ApplicationMaster is
Hadoop's DistributedShell (``AppMaster.jar``, a PUBLIC local resource), which
registers with the RM, asks for one container of the task's size and runs
the task's command there with the task's environment (``--shell_env``):
exactly ``TaskSpec.environment``, nothing of the gateway's own.

A NodeManager writes a container's environment and command into
``launch_container.sh`` inside double quotes, unescaped (``export
KEY="value"``, ``exec /bin/bash -c "command"``), so every value and command
that reaches one is escaped for that (``launch_escaped``); DistributedShell
passes ``--shell_env`` values on to the task container's script verbatim, so
those are escaped once more, and shell-quoted for the AM's own command
line. DistributedShell reads the command from a ``shellCommands`` file
(Java's ``writeUTF`` format), a local resource of the AM.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from ..base import BackendError, TaskSpec
from ..fetch import source_path
from .resources import LocalResource

DS_MAIN = "org.apache.hadoop.yarn.applications.distributedshell.ApplicationMaster"
# yarn.application.classpath's default, after the jars localized in the container.
DEFAULT_CLASSPATH = "<CPS>".join([
    "{{CLASSPATH}}", "./*", "{{HADOOP_CONF_DIR}}", "{{HADOOP_COMMON_HOME}}/share/hadoop/common/*",
    "{{HADOOP_COMMON_HOME}}/share/hadoop/common/lib/*", "{{HADOOP_HDFS_HOME}}/share/hadoop/hdfs/*",
    "{{HADOOP_HDFS_HOME}}/share/hadoop/hdfs/lib/*", "{{HADOOP_YARN_HOME}}/share/hadoop/yarn/*",
    "{{HADOOP_YARN_HOME}}/share/hadoop/yarn/lib/*"])
MAX_TAG_LENGTH = 100
# One argument of a process (bash -c "<the AM's command>") may not exceed 128 KiB on Linux.
MAX_COMMAND_BYTES = 120_000
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


@dataclass(frozen=True)
class ApplicationOptions:
    """What every application of this gateway looks like to YARN."""

    queue: str = "default"
    priority: int = 0
    application_type: str = "WPS"
    tag: str = "wps-gateway"  # every application carries it: how this gateway finds its own after a restart
    am_memory: int = 512
    am_vcores: int = 1
    am_java_opts: str = "-Xmx256m"
    am_classpath: str = DEFAULT_CLASSPATH
    am_command: str | None = None  # a site's own AM: a template, see ``custom_am_command``
    label_attribute: str = ""  # locality hint name=value -> node label value (when name is this)


def launch_escaped(text: str) -> str:
    """``text`` as it must be written for a NodeManager to put it between double quotes in a shell script."""
    return "".join("\\" + c if c in '\\"$`' else c for c in text)


def write_utf(text: str) -> bytes:
    """Java's ``DataOutputStream.writeUTF``: a two-byte length, then modified UTF-8."""
    data = text.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
    encoded = data.encode("utf-8", "surrogatepass").replace(b"\x00", b"\xc0\x80")
    if len(encoded) > 0xFFFF:
        raise BackendError("the task's command is longer than DistributedShell's 65535 bytes")
    return len(encoded).to_bytes(2, "big") + encoded


def tags(spec: TaskSpec, gateway_tag: str) -> list[str]:
    """The gateway's tag, the job's and the task attempt's (YARN keeps tags in lower case, at most 100 chars)."""
    found = [gateway_tag, f"wps-task:{spec.task_id}"]
    if spec.labels.get("job_id"):
        found.insert(1, f"wps-job:{spec.labels['job_id']}")
    return [t.lower()[:MAX_TAG_LENGTH] for t in found]


def node_label(spec: TaskSpec, attribute: str) -> str:
    """The node label a locality hint ``attribute=value`` asks for ('' when none does)."""
    if attribute:
        for hint in spec.locality:
            name, sep, value = hint.partition("=")
            if sep and name.strip() == attribute and value.strip():
                return value.strip()
    return ""


def task_command(spec: TaskSpec, links: list[str] | None = None) -> str:
    """The shell line a task container runs: its files put in place, then its command.

    Without ``links`` (DistributedShell) the spec's ``file://`` URIs are read where they are -- a mount every
    NodeManager sees -- and archives are unpacked into the working directory; with ``links`` (the keys of
    ARCHIVE resources a site's AM localized) their contents are linked into it.
    """
    steps = []
    if links is None:
        for uri in spec.uris:
            path = str(source_path(uri.value))
            if uri.extract and path.endswith(ARCHIVE_SUFFIXES):
                steps.append(f"tar -xf {shlex.quote(path)}")
            elif uri.extract and path.endswith(".zip"):
                steps.append(f"unzip -qo {shlex.quote(path)}")
            else:
                name = shlex.quote(path.rsplit("/", 1)[-1])
                steps.append(f"cp {shlex.quote(path)} {name}" + (f" && chmod +x {name}" if uri.executable else ""))
    else:
        steps += [f"ln -s {shlex.quote(key)}/* ." for key in links]
    return " && ".join([*steps, "exec " + shlex.join(spec.command)])


def distributedshell_command(spec: TaskSpec, memory: int, vcores: int, options: ApplicationOptions) -> str:
    """The AM's command line: DistributedShell with the task's size and environment."""
    words = [DS_MAIN, "--container_memory", str(memory), "--container_vcores", str(vcores), "--num_containers", "1",
             "--priority", "0"]
    for key, value in sorted(spec.environment.items()):
        words += ["--shell_env", f"{key}={launch_escaped(value)}"]
    return " ".join(["{{JAVA_HOME}}/bin/java", options.am_java_opts, *map(shlex.quote, words),
                     "1><LOG_DIR>/AppMaster.stdout", "2><LOG_DIR>/AppMaster.stderr"])


def custom_am_command(spec: TaskSpec, memory: int, vcores: int, options: ApplicationOptions, links: list[str]) -> str:
    """A site's AM: ``am_command`` with ``{command}`` (the task's shell line, quoted), ``{memory}``, ``{vcores}``,
    ``{task_id}`` filled in; the task's environment is the AM container's (it passes it on)."""
    values = {"command": shlex.quote(task_command(spec, links)), "memory": memory, "vcores": vcores,
              "task_id": shlex.quote(spec.task_id)}
    try:
        return options.am_command.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise BackendError(f"am_command template: {exc!r} (placeholders: {', '.join(values)})") from None


def submission_context(app_id: str, spec: TaskSpec, memory: int, vcores: int, options: ApplicationOptions,
                       resources: list[LocalResource]) -> dict[str, Any]:
    """The body of ``POST /ws/v1/cluster/apps`` for one task attempt."""
    environment: list[dict[str, str]] = []
    if options.am_command is None:
        command = distributedshell_command(spec, memory, vcores, options)
        environment.append({"key": "CLASSPATH", "value": options.am_classpath})
    else:
        links = [r.key for r in resources if r.type == "ARCHIVE"]
        command = custom_am_command(spec, memory, vcores, options, links)
        environment += [{"key": k, "value": launch_escaped(v)} for k, v in sorted(spec.environment.items())]
    command = launch_escaped(command)
    if len(command.encode()) > MAX_COMMAND_BYTES:
        raise BackendError(f"the task's command and environment take {len(command.encode())} bytes on the AM's "
                           f"command line; YARN containers take at most {MAX_COMMAND_BYTES}")
    context: dict[str, Any] = {
        "application-id": app_id,
        "application-name": spec.task_id,
        "application-type": options.application_type,
        "queue": options.queue,
        "priority": options.priority + max(spec.priority, 0),
        "max-app-attempts": 1,  # a failed attempt is the dispatcher's to retry, within the step's retries
        "unmanaged-AM": False,
        "keep-containers-across-application-attempts": False,
        "application-tags": {"tag": tags(spec, options.tag)},
        "resource": {"memory": options.am_memory, "vCores": options.am_vcores},
        "am-container-spec": {
            "commands": {"command": command},
            "environment": {"entry": environment},
            "local-resources": {"entry": [r.entry() for r in resources]},
        },
    }
    label = node_label(spec, options.label_attribute)
    if label:
        context["app-node-label-expression"] = label
    return context
