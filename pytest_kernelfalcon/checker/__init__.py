"""The trusted judgement (parent side): options, reference cache, candidate jobs, static audit, judgement, timing."""

from pytest_kernelfalcon.checker.checker import Checker, CheckOptions, verify_candidate

__all__ = ["CheckOptions", "Checker", "verify_candidate"]
