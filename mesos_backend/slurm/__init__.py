"""The Slurm backend: one batch job per task attempt, through Slurm's client commands."""
