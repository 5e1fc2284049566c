"""Task lists (mesos-batch): the built-in ``batch`` process, its planner and ``wps-gateway batch run``."""

BATCH_PROCESS = "batch"  # the shipped processor (processes/batch) whose tasks come from a task list
