"""The ``kernelfalcon`` command: dispatches to ``verify`` and ``report`` subcommands."""

from __future__ import annotations

import sys

USAGE = """usage: kernelfalcon <command> [options]

commands:
  verify TASK.py CANDIDATE.py   judge one candidate with the trusted checker
  report show|compare|merge     print, compare or merge JSON reports
  selftest DIR...               judge every task with candidates of known verdict (harness self-test)

run 'kernelfalcon <command> --help' for a command's options; 'kernelfalcon --version' prints the version"""


def main(argv: list[str] | None = None) -> int:
    """Run the ``kernelfalcon`` command line; return the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    if args[0] == "--version":
        from pytest_kernelfalcon import __version__

        print(f"kernelfalcon {__version__}")
        return 0
    command, rest = args[0], args[1:]
    if command == "verify":
        from pytest_kernelfalcon.cli.verify import main as verify_main

        return verify_main(rest)
    if command == "report":
        from pytest_kernelfalcon.cli.report import main as report_main

        return report_main(rest)
    if command == "selftest":
        from pytest_kernelfalcon.cli.selftest import main as selftest_main

        return selftest_main(rest)
    print(f"kernelfalcon: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2
