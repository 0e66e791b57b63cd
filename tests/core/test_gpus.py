"""GPU pinning of xdist workers, with simulated device lists (no multi-GPU machine needed)."""

from __future__ import annotations

import pytest

from pytest_kernelfalcon.core.gpus import auto_workers, gpu_for_worker, visible_gpus, worker_index


def test_workers_pin_the_callers_visible_devices_in_order() -> None:
    env = {"CUDA_VISIBLE_DEVICES": "2,5"}
    assert [gpu_for_worker(f"gw{i}", env) for i in range(4)] == ["2", "5", "2", "5"]
    assert auto_workers(env) == 2


def test_hidden_devices_are_never_chosen() -> None:
    env = {"CUDA_VISIBLE_DEVICES": "3,1"}
    chosen = {gpu_for_worker(f"gw{i}", env, device_count=8) for i in range(16)}
    assert chosen == {"3", "1"}


def test_unset_means_every_device() -> None:
    assert visible_gpus({}, device_count=3) == ["0", "1", "2"]
    assert [gpu_for_worker(f"gw{i}", {}, 3) for i in range(4)] == ["0", "1", "2", "0"]
    assert auto_workers({}, 4) == 4


@pytest.mark.parametrize("value", ["", "-1", "-1,0"])
def test_no_visible_gpu(value: str) -> None:
    env = {"CUDA_VISIBLE_DEVICES": value}
    assert visible_gpus(env, device_count=4) == []
    assert gpu_for_worker("gw0", env, 4) is None
    assert auto_workers(env, 4) == 1


def test_no_gpu_at_all() -> None:
    assert gpu_for_worker("gw1", {}, 0) is None
    assert auto_workers({}, 0) == 1


def test_negative_entry_hides_the_rest_and_uuids_pass_through() -> None:
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "1, 0,-1,2"}) == ["1", "0"]
    env = {"CUDA_VISIBLE_DEVICES": "GPU-aaaa,MIG-bbbb"}
    assert gpu_for_worker("gw1", env) == "MIG-bbbb"


def test_controller_and_unknown_ids_use_the_first_gpu() -> None:
    env = {"CUDA_VISIBLE_DEVICES": "6,7"}
    assert worker_index(None) == 0 and worker_index("master") == 0 and worker_index("gw12") == 12
    assert gpu_for_worker(None, env) == "6" and gpu_for_worker("master", env) == "6"
