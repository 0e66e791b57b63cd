"""Units for handoff.py on the CPU: tensor descriptors and length-prefixed messages over real pipes."""

from __future__ import annotations

import base64
import json
import os
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from pytest_kernelfalcon.core.handoff import (
    MAX_DIMS,
    MAX_FRAME,
    HandoffDeadline,
    HandoffError,
    describe,
    open_value,
    recv,
    send,
)


def through_json(value: Any) -> Any:
    """Describe ``value`` as the candidate does, pass it through JSON, open it as the comparer does."""
    return open_value(json.loads(json.dumps(describe(value))), "cpu")


def assert_same_tensor(got: Any, want: torch.Tensor) -> None:
    assert isinstance(got, torch.Tensor)
    assert got.dtype == want.dtype and got.shape == want.shape and got.device.type == "cpu"
    assert torch.equal(got, want)


# -- descriptors: round trips -------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    torch.tensor(3.25),
    torch.arange(12, dtype=torch.float32).reshape(3, 4).t(),
    torch.arange(40, dtype=torch.float32).reshape(5, 8)[1:4, ::3],
    torch.empty(3, 0),
    torch.tensor([True, False, True, True, False]),
    torch.tensor([-(2**62), -1, 0, 2**62 + 7], dtype=torch.int64),
    torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16),
    torch.tensor([[1, 2], [3, 4]], dtype=torch.uint8),
], ids=["0-d", "transposed", "strided-slice", "empty-3x0", "bool", "int64", "bf16", "uint8"])
def test_tensor_round_trip(value: torch.Tensor) -> None:
    got = through_json(value)
    assert_same_tensor(got, value)
    assert got.is_contiguous()


def test_round_trip_copies_and_ignores_the_rest_of_the_storage() -> None:
    base = torch.arange(100, dtype=torch.float32)
    view = base[10:13]
    desc = describe(view)
    assert desc["offset"] == 0 and len(base64.b64decode(desc["storage"])) == 12  # only the view travels
    got = open_value(desc, "cpu")
    assert_same_tensor(got, view)
    got.fill_(-1.0)  # the comparer's copy is its own memory
    assert torch.equal(view, torch.tensor([10.0, 11.0, 12.0]))


def test_zero_dim_descriptor_has_empty_shape_and_stride() -> None:
    desc = describe(torch.tensor(7, dtype=torch.int32))
    assert (desc["shape"], desc["stride"], desc["dtype"]) == ([], [], "int32")
    got = open_value(desc, "cpu")
    assert got.dim() == 0 and int(got) == 7


def test_detached_gradients_do_not_matter() -> None:
    value = torch.ones(4, requires_grad=True) * 2
    got = through_json(value)
    assert not got.requires_grad and torch.equal(got, torch.full((4,), 2.0))


@pytest.mark.parametrize("value", [1.5, -3, True, False, 0.0])
def test_python_numbers_round_trip(value: Any) -> None:
    got = through_json(value)
    assert got == value and type(got) is type(value)


def test_none_round_trips() -> None:
    assert describe(None) == {"kind": "none"}
    assert through_json(None) is None


@pytest.mark.parametrize("value, name", [(object(), "object"), ({1: 2}, "dict"), (slice(1, 2), "slice")])
def test_unsupported_output_becomes_a_string(value: Any, name: str) -> None:
    got = through_json(value)
    assert got == f"<unsupported output type {name}>"


NESTED = [
    "text", (3, 5), [1, [2, (3, 4)]], {"shape": (2, 3), "eps": 1e-5, "name": "ln"}, torch.float16,
    torch.Size([4, 5]), (), [], (True, None, 2.5),
]


@pytest.mark.parametrize("value", NESTED, ids=lambda v: type(v).__name__)
def test_containers_strings_and_dtypes_round_trip_through_a_descriptor(value: Any) -> None:
    got = through_json(value)
    assert got == value and type(got) is type(value)


def test_tensors_inside_containers_round_trip() -> None:
    value = ([torch.arange(3)], {"mask": torch.tensor([True, False])})
    got = through_json(value)
    assert isinstance(got, tuple) and isinstance(got[0], list) and isinstance(got[1], dict)
    assert_same_tensor(got[0][0], value[0][0])
    assert_same_tensor(got[1]["mask"], value[1]["mask"])


@pytest.mark.parametrize("desc", [
    {"kind": "tuple", "items": "nope"}, {"kind": "list"}, {"kind": "size", "items": [{"kind": "str", "value": "a"}]},
    {"kind": "dict", "keys": ["a"], "items": []}, {"kind": "dict", "keys": [1], "items": [{"kind": "none"}]},
    {"kind": "str", "value": 3}, {"kind": "dtype", "value": "os.system"},
], ids=["items-not-list", "no-items", "size-of-str", "dict-short", "dict-int-key", "str-not-str", "dtype-unknown"])
def test_malformed_container_descriptors_raise(desc: dict[str, Any]) -> None:
    with pytest.raises(HandoffError):
        open_value(desc, "cpu")


def test_unsupported_type_name_is_cut() -> None:
    got = open_value({"kind": "unsupported", "type": "X" * 500}, "cpu")
    assert got.startswith("<unsupported output type X") and len(got) < 100


# -- descriptors: malformed -----------------------------------------------------------------


def good() -> dict[str, Any]:
    """A valid CPU descriptor of a 2x3 float32 tensor (6 elements of storage)."""
    return describe(torch.arange(6, dtype=torch.float32).reshape(2, 3))


def test_good_descriptor_opens() -> None:
    assert_same_tensor(open_value(good(), "cpu"), torch.arange(6, dtype=torch.float32).reshape(2, 3))


@pytest.mark.parametrize("change, message", [
    ({"dtype": "complex64"}, "bad descriptor"),
    ({"dtype": "torch.float32"}, "bad descriptor"),
    ({"kind": "pickle"}, "bad descriptor"),
    ({"kind": "value", "value": [1, 2]}, "bad descriptor"),
    ({"shape": [2, 4]}, "exceeds its storage"),
    ({"shape": [7], "stride": [1]}, "exceeds its storage"),
    ({"offset": 1}, "exceeds its storage"),
    ({"stride": [4, 1]}, "exceeds its storage"),
    ({"stride": [3]}, "shape and stride differ in length"),
    ({"shape": [2, 3, 1]}, "shape and stride differ in length"),
    ({"shape": [2, -3], "stride": [3, 1]}, "bad shape"),
    ({"stride": [3, -1]}, "bad stride"),
    ({"offset": -1}, "bad offset"),
    ({"shape": [2, True]}, "bad shape"),
    ({"stride": [3, False]}, "bad stride"),
    ({"offset": True}, "bad offset"),
    ({"offset": 0.0}, "bad offset"),
    ({"shape": [2.0, 3]}, "bad shape"),
    ({"shape": "2,3"}, "bad shape"),
    ({"stride": None}, "bad stride"),
    ({"shape": [1] * (MAX_DIMS + 1), "stride": [1] * (MAX_DIMS + 1)}, "bad shape"),
    ({"storage": 12345}, "bad CPU storage descriptor"),
    ({"storage": None}, "bad CPU storage descriptor"),
    ({"storage": base64.b64encode(b"\0" * 23).decode()}, "exceeds its storage"),
    ({"device": "cuda"}, "a CUDA tensor in a CPU run"),
])
def test_malformed_descriptor_raises(change: dict[str, Any], message: str) -> None:
    with pytest.raises(HandoffError, match=message):
        open_value({**good(), **change}, "cpu")


def test_byte_length_not_a_multiple_of_itemsize() -> None:
    desc = {**good(), "shape": [1], "stride": [1], "storage": base64.b64encode(b"\0" * 7).decode()}
    with pytest.raises(HandoffError, match="exceeds its storage"):
        open_value(desc, "cpu")
    # 8 bytes of int64 is fine, 9 is not (even though one element would fit)
    desc64 = {**desc, "dtype": "int64", "storage": base64.b64encode(b"\1" + b"\0" * 7).decode()}
    assert open_value(desc64, "cpu").tolist() == [1]
    with pytest.raises(HandoffError, match="exceeds its storage"):
        open_value({**desc64, "storage": base64.b64encode(b"\1" + b"\0" * 8).decode()}, "cpu")


def test_max_dims_is_allowed() -> None:
    value = torch.ones([1] * MAX_DIMS)
    assert_same_tensor(through_json(value), value)


def test_zero_stride_view_of_one_element_is_a_legal_broadcast() -> None:
    desc = {**describe(torch.tensor([5.0])), "shape": [3, 4], "stride": [0, 0]}
    assert torch.equal(open_value(desc, "cpu"), torch.full((3, 4), 5.0))


def test_empty_view_needs_no_storage() -> None:
    desc = {**describe(torch.empty(0)), "shape": [5, 0, 2], "stride": [9, 9, 9], "offset": 100}
    assert open_value(desc, "cpu").shape == (5, 0, 2)


@pytest.mark.parametrize("desc", [None, [], "tensor", 3, {"no": "kind"}])
def test_not_a_descriptor(desc: Any) -> None:
    with pytest.raises(HandoffError):
        open_value(desc, "cpu")


def test_cuda_descriptor_on_a_cpu_run_is_refused_before_its_handle() -> None:
    desc = {**good(), "device": "cuda", "storage": ["not", "a", "handle"]}
    with pytest.raises(HandoffError, match="a CUDA tensor in a CPU run"):
        open_value(desc, "cpu")


@pytest.mark.parametrize("change", [
    {"storage": "!!not base64"},
    {"shape": [0, 2**63], "stride": [1, 1]},
    {"shape": [1], "stride": [2**64]},
    {"shape": [2**40, 2**40], "stride": [0, 0]},
], ids=["bad-base64", "huge-empty-shape", "huge-stride", "numel-overflow"])
def test_hostile_descriptor_raises_handoff_error(change: dict[str, Any]) -> None:
    with pytest.raises(HandoffError):
        open_value({**good(), **change}, "cpu")


# -- messages over pipes ----------------------------------------------------------------------


class Pipe:
    """A fresh pipe; ``close_writer`` closes the write end once (no fd number is ever closed twice)."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        self.open = [self.r, self.w]

    def close_writer(self) -> None:
        self.open.remove(self.w)
        os.close(self.w)

    def close(self) -> None:
        for fd in self.open:
            os.close(fd)
        self.open = []


@pytest.fixture
def pipe() -> Iterator[Pipe]:
    """A fresh pipe, closed after the test."""
    made = Pipe()
    yield made
    made.close()


def soon(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


def test_send_recv_round_trip(pipe: Pipe) -> None:
    r, w = pipe.r, pipe.w
    messages: list[dict[str, Any]] = [{"type": "inputs", "seed": 42, "inputs": [describe(torch.arange(3.0))]},
                {"type": "ack"}, {"type": "done", "audit": {}, "timings": {"run_s": 0.5}, "error": None},
                {"unicode": "résumé ✓", "nested": {"a": [1, 2.5, None, True]}}]
    for message in messages:
        send(w, message)
    assert [recv(r, soon()) for _ in messages] == messages


def test_large_message_round_trip_through_a_small_pipe(pipe: Pipe) -> None:
    r, w = pipe.r, pipe.w
    big = torch.randn(300_000, generator=torch.Generator().manual_seed(1))  # 1.2 MB, far above a pipe buffer
    message = {"type": "outputs", "seed": 1, "outputs": [describe(big)]}
    writer = threading.Thread(target=send, args=(w, message))
    writer.start()
    got = recv(r, soon(30))
    writer.join(10)
    assert got == json.loads(json.dumps(message))
    assert torch.equal(open_value(got["outputs"][0], "cpu"), big)


def test_eof_before_a_message(pipe: Pipe) -> None:
    r = pipe.r
    pipe.close_writer()
    with pytest.raises(HandoffError, match="closed"):
        recv(r, soon())


def test_eof_in_the_middle_of_a_frame(pipe: Pipe) -> None:
    r, w = pipe.r, pipe.w
    os.write(w, struct.pack("<I", 100) + b'{"type": "ack"')
    pipe.close_writer()
    with pytest.raises(HandoffError, match="closed"):
        recv(r, soon())


def test_eof_in_the_middle_of_a_header(pipe: Pipe) -> None:
    r, w = pipe.r, pipe.w
    os.write(w, b"\x05\x00")
    pipe.close_writer()
    with pytest.raises(HandoffError, match="closed"):
        recv(r, soon())


def test_deadline_passes_with_the_writer_still_open(pipe: Pipe) -> None:
    r = pipe.r
    start = time.monotonic()
    with pytest.raises(HandoffError, match="deadline"):
        recv(r, start + 0.3)
    assert 0.25 <= time.monotonic() - start < 5.0


def test_deadline_passes_in_the_middle_of_a_frame(pipe: Pipe) -> None:
    r, w = pipe.r, pipe.w
    os.write(w, struct.pack("<I", 50) + b'{"type":')
    with pytest.raises(HandoffError, match="deadline"):
        recv(r, time.monotonic() + 0.3)


def test_what_came_before_a_missed_deadline_is_read_first(pipe: Pipe) -> None:
    """A reader scheduled late (a loaded machine) still gets the message, or the end, that came in time."""
    r, w = pipe.r, pipe.w
    send(w, {"type": "ack"})
    assert recv(r, time.monotonic() - 10) == {"type": "ack"}
    pipe.close_writer()
    with pytest.raises(HandoffError, match="closed") as raised:
        recv(r, time.monotonic() - 10)
    assert not isinstance(raised.value, HandoffDeadline)


def test_a_missed_deadline_is_its_own_error(pipe: Pipe) -> None:
    with pytest.raises(HandoffDeadline):
        recv(pipe.r, time.monotonic() + 0.05)


def test_frame_larger_than_max_frame_is_refused_without_reading_it(pipe: Pipe) -> None:
    r, w = pipe.r, pipe.w
    os.write(w, struct.pack("<I", MAX_FRAME + 1))
    start = time.monotonic()
    with pytest.raises(HandoffError, match=f"exceeds {MAX_FRAME}"):
        recv(r, soon())
    assert time.monotonic() - start < 2.0  # refused at once, not after waiting for 64 MiB


def test_frame_of_exactly_max_frame_header_is_accepted_as_a_size(pipe: Pipe) -> None:
    r, w = pipe.r, pipe.w
    os.write(w, struct.pack("<I", MAX_FRAME) + b"{}")
    pipe.close_writer()
    with pytest.raises(HandoffError, match="closed"):  # it waits for the body, the writer is gone
        recv(r, soon())


@pytest.mark.parametrize("body", [b"[1, 2]", b'"done"', b"42", b"null", b"true"])
def test_json_that_is_not_an_object(pipe: Pipe, body: bytes) -> None:
    r, w = pipe.r, pipe.w
    os.write(w, struct.pack("<I", len(body)) + body)
    with pytest.raises(HandoffError, match="JSON object"):
        recv(r, soon())


@pytest.mark.parametrize("body", [b"", b"{not json", b'{"a": "\xc3\x28"}', b'{"a": 1} trailing'])
def test_malformed_json(pipe: Pipe, body: bytes) -> None:
    r, w = pipe.r, pipe.w
    os.write(w, struct.pack("<I", len(body)) + body)
    with pytest.raises(HandoffError, match="malformed message"):
        recv(r, soon())


def test_messages_are_read_one_frame_at_a_time(pipe: Pipe) -> None:
    r, w = pipe.r, pipe.w
    send(w, {"n": 1})
    os.write(w, struct.pack("<I", 3) + b"[1]")
    send(w, {"n": 3})
    assert recv(r, soon()) == {"n": 1}
    with pytest.raises(HandoffError):
        recv(r, soon())
    assert recv(r, soon()) == {"n": 3}  # the bad frame was consumed whole


def test_deeply_nested_json_raises_handoff_error(pipe: Pipe) -> None:
    r, w = pipe.r, pipe.w
    body = b"[" * 100_000
    writer = threading.Thread(target=_write_all, args=(w, struct.pack("<I", len(body)) + body))
    writer.start()
    try:
        with pytest.raises(HandoffError):
            recv(r, soon())
    finally:
        writer.join(10)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
