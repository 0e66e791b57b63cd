"""Candidate for KernelBench level1/95_CrossEntropyLoss: per-row log-sum-exp loss, then a mean.

Two Triton kernels: one program per row streams the classes in blocks with an online
maximum (numerically safe log-sum-exp) and subtracts the target's logit; a single program
then averages the per-row losses in a fixed order (deterministic).
"""

import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _row_loss_kernel(logits_ptr, target_ptr, loss_ptr, n_classes, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = logits_ptr + row * n_classes
    running_max = tl.full((BLOCK,), float("-inf"), tl.float32)
    running_sum = tl.zeros((BLOCK,), tl.float32)
    for start in range(0, n_classes, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        x = tl.load(base + cols, mask=cols < n_classes, other=float("-inf"))
        new_max = tl.maximum(running_max, x)
        # lanes that have seen only -inf keep a zero sum (avoid inf - inf)
        safe = tl.where(new_max == float("-inf"), 0.0, new_max)
        running_sum = running_sum * tl.exp(running_max - safe) + tl.exp(x - safe)
        running_max = new_max
    row_max = tl.max(running_max, axis=0)
    total = tl.sum(running_sum * tl.exp(running_max - row_max), axis=0)
    target = tl.load(target_ptr + row)
    picked = tl.load(base + target)
    tl.store(loss_ptr + row, tl.log(total) + row_max - picked)


@triton.jit
def _mean_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    acc = tl.zeros((BLOCK,), tl.float32)
    for start in range(0, n, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        acc += tl.load(x_ptr + offs, mask=offs < n, other=0.0)
    tl.store(out_ptr, tl.sum(acc, axis=0) / n)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, predictions, targets):
        predictions = predictions.contiguous()
        targets = targets.contiguous()
        n_rows, n_classes = predictions.shape
        losses = torch.empty(n_rows, device=predictions.device, dtype=torch.float32)
        out = torch.empty((), device=predictions.device, dtype=predictions.dtype)
        _row_loss_kernel[(n_rows,)](predictions, targets, losses, n_classes, BLOCK=1024)
        _mean_kernel[(1,)](losses, out, n_rows, BLOCK=1024)
        return out
