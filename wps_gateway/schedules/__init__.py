"""Repeated runs (mesos-http-scheduler): schedules kept in the job store, run by the active dispatcher's side."""
