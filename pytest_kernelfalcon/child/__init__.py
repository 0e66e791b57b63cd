"""The untrusted side: code that runs in the child processes that execute task and candidate code.

Nothing here imports the checker, the executors, the pipeline, the session or the plugin; it
speaks to the parent only through ``core.protocol`` records in job files and pipes.
``python -m pytest_kernelfalcon.child JOBDIR`` runs one job.
"""
