"""Which CUDA IPC directions work across uids. Run as root on a GPU machine:

    python benchmarks/cuda_ipc_uids.py

An exporter process shares a CUDA tensor (torch's ``_share_cuda_``), an importer opens it
(``UntypedStorage._new_shared_cuda``) and checks the values, for each pair of uids
(root, 64123, 64124). On an H100 (driver 580) the mapping works only between
processes of the same uid; this is why the resident comparer runs as its candidate's uid.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from typing import Any

UID = 64123
N = 1 << 24


def expected() -> Any:
    """The tensor both sides agree on."""
    import torch

    return torch.arange(N, device="cuda", dtype=torch.float32)


def export() -> str:
    """Share a tensor, print its handle, wait for a line on stdin."""
    x = expected()
    args = x.untyped_storage()._share_cuda_()
    print(json.dumps([base64.b64encode(a).decode() if isinstance(a, bytes) else a for a in args]), flush=True)
    sys.stdin.readline()
    return "exported"


def import_handle() -> str:
    """Open the handle read from stdin and compare with the expected values."""
    import torch

    args = [base64.b64decode(a) if isinstance(a, str) else a for a in json.loads(sys.stdin.readline())]
    try:
        storage = torch.UntypedStorage._new_shared_cuda(*args)
        got = torch.empty(0, device="cuda").set_(storage, 0, (N,), (1,))
        return f"import ok={bool((got == expected()).all())}"
    except Exception as exc:
        return f"import FAILED {type(exc).__name__}: {str(exc)[:70]}"


def spawn(role: str, uid: int | None) -> subprocess.Popen[str]:
    """Start one side as ``uid`` (None: stay root)."""
    def drop() -> None:
        os.setsid()
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)

    return subprocess.Popen([sys.executable, __file__, role], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            preexec_fn=drop, text=True, cwd="/tmp")


def case(exporter_uid: int | None, importer_uid: int | None) -> None:
    """Run one exporter/importer pair and print what happened."""
    exporter = spawn("export", exporter_uid)
    assert exporter.stdout is not None and exporter.stdin is not None
    line = exporter.stdout.readline()
    importer = spawn("import", importer_uid)
    out, _ = importer.communicate(line)
    exporter.stdin.write("\n")
    exporter.stdin.flush()
    exporter.wait()
    print(f"exporter uid {exporter_uid} -> importer uid {importer_uid}: {out.strip()}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["export"]:
        print(export(), flush=True)
    elif sys.argv[1:] == ["import"]:
        print(import_handle(), flush=True)
    else:
        for pair in ((None, None), (None, UID), (UID, None), (UID, UID), (UID, UID + 1)):
            case(*pair)
