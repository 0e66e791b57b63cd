"""The run-time op policy: which aten ops the candidate's ``forward`` may run (allocation, views, copies).

For the aten ops a TorchDispatchMode sees while the candidate's ``forward`` runs: allocation
(``empty*``, ``zeros*``, ``ones*``, ``full*``, ``new_*``, ``scalar_tensor``), random factories and
fills (references draw noise), views and layout, copies into buffers and metadata or sync are
allowed. Every other op (arithmetic, reductions, matmul, convolution, activations, indexing,
``cat``, ``where``, ...) is torch compute and makes the candidate fail with ``torch_compute``,
unless the parent's judge was asked for a hybrid policy naming it (``--allow-torch``, ``core/ops.py``):
every op outside this list is reported, the parent decides.
"""

from __future__ import annotations

from pytest_kernelfalcon.core.ops import op_base_name


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_ALLOWED_OPS = _words(
    # allocation
    "empty empty_like empty_strided empty_permuted new_empty new_empty_strided zeros zeros_like new_zeros "
    "ones ones_like new_ones full full_like new_full scalar_tensor "
    # random factories and fills
    "rand rand_like randn randn_like randint randint_like randperm normal normal_ uniform_ random_ "
    "bernoulli bernoulli_ exponential_ geometric_ log_normal_ cauchy_ "
    # views and shape ops
    "view _unsafe_view view_as _reshape_alias reshape flatten unflatten as_strided as_strided_ permute "
    "movedim transpose transpose_ t t_ expand expand_as squeeze squeeze_ unsqueeze unsqueeze_ slice select "
    "narrow split split_with_sizes chunk unbind alias detach detach_ lift lift_fresh lift_fresh_copy "
    "view_as_real view_as_complex resolve_conj resolve_neg "
    # copies into buffers
    "contiguous clone copy_ _copy_from _copy_from_and_resize _to_copy to fill_ zero_ set_ resize_ resize_as_ "
    # metadata and synchronisation
    "_local_scalar_dense is_nonzero sym_size sym_stride sym_numel sym_storage_offset size stride dim numel "
    "is_same_size _has_compatible_shallow_copy_type record_stream"
)


def is_allowed_op(name: str) -> bool:
    """Return whether a run-time aten op is allocation, view, copy or metadata (not torch compute)."""
    return op_base_name(name) in _ALLOWED_OPS
