"""``python -m pytest_kernelfalcon.cli``: the ``kernelfalcon`` command."""

from pytest_kernelfalcon.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
