"""``python -m pytest_kernelfalcon.child JOBDIR [--timeout S]``: run one job in this process."""

from pytest_kernelfalcon.child.jobs import main

if __name__ == "__main__":
    main()
