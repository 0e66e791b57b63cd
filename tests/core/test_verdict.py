"""Verdict records: messages name the user's candidate file, not the checker's copy of it."""

from __future__ import annotations

from pytest_kernelfalcon.core.verdict import Category, Verdict


def test_messages_name_the_users_file_for_the_jobs_copy() -> None:
    detail = ('forward ran aten.relu.default x1 at candidate.py:12; File "/tmp/kf-cand-a_b1/candidate.py", line 3 '
              "(static audit, candidate.py:4)")
    named = Verdict.failed(Category.TORCH_COMPUTE, detail).naming("kernels/my_relu.py")
    assert named.detail == ('forward ran aten.relu.default x1 at kernels/my_relu.py:12; File "kernels/my_relu.py", '
                            "line 3 (static audit, kernels/my_relu.py:4)")
    assert named.category is Category.TORCH_COMPUTE


def test_other_files_that_end_in_candidate_py_are_left_alone() -> None:
    detail = "imports my_candidate.py:3 and /home/u/candidate.py:4"
    assert Verdict.failed(Category.CRASH, detail).naming("k.py").detail == detail
