"""Executors (parent side): how a job directory is run in a child process (cold, warm)."""
