"""Work pulled from order systems (espa-scheduler): ``[sources]``, polled by the active dispatcher's side."""
