"""The machine's problems are never the candidate's (issue 22): a disk that filled up while a job wrote its
files, as seen on an H100 with 4 KernelBench matmuls at once (level1/7 and 9: 4 GiB outputs a trial)."""

from __future__ import annotations

from pytest_kernelfalcon.checker.blame import harness_cause
from pytest_kernelfalcon.checker.judge import job_failure
from pytest_kernelfalcon.core.verdict import Category
from pytest_kernelfalcon.executor.base import JobResult

SEEN = """  File "/work/main/pytest_kernelfalcon/child/jobs.py", line 66, in run_job
    torch.save({"version": 1, "nonce": nonce, **body}, tmp)
  File "/opt/torch/.venv/lib/python3.12/site-packages/torch/serialization.py", line 835, in __exit__
    self.file_like.write_end_of_file()
RuntimeError: [enforce fail at inline_container.cc:672] . unexpected pos 4328524928 vs 4328524760"""


def _failed(stderr: str) -> JobResult:
    return JobResult(3, False, False, stderr, 20.0, None, "no result.pt was written")


def test_a_short_write_of_the_result_file_is_the_machines_disk() -> None:
    cause = harness_cause(_failed(SEEN))
    assert cause is not None and cause.startswith("cannot run here: the job's files could not be written")
    for what in ("reference", "candidate"):
        verdict = job_failure(_failed(SEEN), what)
        assert verdict is not None and verdict.category == Category.HARNESS_ERROR, verdict


def test_no_space_left_is_the_machines_and_other_crashes_stay_crashes() -> None:
    assert harness_cause(_failed("OSError: [Errno 28] No space left on device: '/tmp/kf-ref-1/result.pt'"))
    verdict = job_failure(_failed("Segmentation fault in candidate kernel"), "candidate")
    assert verdict is not None and verdict.category == Category.CRASH


def test_big_outputs_count_toward_the_resident_threshold(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pytest_kernelfalcon.child.runtime import exec_file, input_numel, io_numel

    task = tmp_path / "mm.py"
    task.write_text("import torch\nimport torch.nn as nn\n"
                    "class Model(nn.Module):\n    def forward(self, a, b):\n        return a @ b\n"
                    "M = 32768\nK = 64\n"
                    "def get_inputs():\n    return [torch.rand(M, K), torch.rand(K, M)]\n"
                    "def get_init_inputs():\n    return []\n")
    module = exec_file(task, "kf_io_numel_test")
    assert input_numel(module.get_inputs) == 2 * 32768 * 64
    assert io_numel(module) == 2 * 32768 * 64 + 32768 * 32768  # measured on meta: nothing allocated
