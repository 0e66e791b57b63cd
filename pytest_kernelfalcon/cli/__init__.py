"""``kernelfalcon``: the command line (verify, report)."""

from pytest_kernelfalcon.cli.main import main

__all__ = ["main"]
