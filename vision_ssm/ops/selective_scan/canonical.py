"""Argument checking and the canonical layout that every backend implements.

Canonical layout (K directions, Ku in {1, K} for tensors shared by all directions):
    u (B, Ku, D, L)   delta (B, K, D, L)   A (K, D, N)   B, C (B, K, G, N, L)
    D, delta_bias (K, D)   z (B, Ku, D, L)   index (K, L) int64 or None (identity)
All per-token tensors are in *image order*: step t of direction k reads position index[k, t]
and writes its output back there.  Any strides are accepted, so a (B, C, H, W) map passes as
``x.flatten(2)`` and a (B, H, W, C) map as ``x.flatten(1, 2).transpose(1, 2)``, both views.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Optional

import torch
from torch.utils.weak import WeakIdKeyDictionary

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
MERGES = ("sum", "none")


@dataclass
class ScanArgs:
    u: torch.Tensor
    delta: torch.Tensor
    A: torch.Tensor
    B: torch.Tensor
    C: torch.Tensor
    D: Optional[torch.Tensor]
    z: Optional[torch.Tensor]
    delta_bias: Optional[torch.Tensor]
    delta_softplus: bool
    index: Optional[torch.Tensor]
    merge: str

    @property
    def shape(self):
        """(batch, K, dim, length, d_state, groups)."""
        return (self.u.shape[0], self.A.shape[0], self.A.shape[1], self.u.shape[-1],
                self.A.shape[2], self.B.shape[2])

    def tensors(self):
        return (self.u, self.delta, self.A, self.B, self.C, self.D, self.z, self.delta_bias)

    def backward_can_follow(self) -> bool:
        """Whether a backward may follow the forward (grad mode on, some input requiring grad).
        Decided before an autograd Function runs: inside its forward grad mode is off, and
        ``ctx.needs_input_grad`` is set even under ``torch.no_grad``."""
        return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in self.tensors())


def autocast_off(device: torch.device):
    """A region that computes in the inputs' dtypes whatever the autocast (none on meta)."""
    if device.type == "meta":
        return contextlib.nullcontext()
    return torch.autocast(device.type, enabled=False)


def _fail(name: str, expected: str, tensor: torch.Tensor, sizes_from: Optional[torch.Tensor] = None):
    """Raises a shape error; ``sizes_from``: the `u` whose batch and length the expectation uses."""
    source = "" if sizes_from is None else f" (batch and length from `u` of shape {tuple(sizes_from.shape)})"
    raise ValueError(f"selective_scan: `{name}` must be {expected}{source}, got shape {tuple(tensor.shape)}")


def _check_shape(name, tensor, expected_shapes, description, sizes_from=None):
    if tuple(tensor.shape) not in [tuple(s) for s in expected_shapes]:
        _fail(name, description, tensor, sizes_from)


# Index maps already proven to be permutations, keyed weakly by tensor (checked again if modified).
_checked_indices = WeakIdKeyDictionary()


def check_index(index: torch.Tensor, K: int, length: int, device) -> torch.Tensor:
    if not isinstance(index, torch.Tensor) or index.dtype not in (torch.int64, torch.int32):
        got = type(index).__name__ if not isinstance(index, torch.Tensor) else index.dtype
        raise TypeError(f"selective_scan: `index` must be an int64 (or int32) tensor of shape (K, L), got {got}")
    if tuple(index.shape) != (K, length):
        raise ValueError(f"selective_scan: `index` must have shape (K, L) = ({K}, {length}), "
                         f"got {tuple(index.shape)}")
    if index.device != device:
        raise ValueError(f"selective_scan: `index` is on {index.device} but `u` is on {device}")
    # inference tensors have no version counter: those are checked on every call
    if index.device.type == "meta":  # shapes only: nothing to check
        return index.long()
    key = None if index.is_inference() else (index._version, index.data_ptr())
    if key is None or _checked_indices.get(index) != key:
        expected = torch.arange(length, device=index.device).expand(K, length)
        if not torch.equal(index.sort(dim=-1).values, expected.to(index.dtype)):
            raise ValueError("selective_scan: every row of `index` must be a permutation of "
                             f"0..L-1 (L={length}); each token must be read exactly once per direction")
        if key is not None:
            _checked_indices[index] = key
    return index.long()


def canonicalize(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                 index=None, merge="sum") -> tuple[ScanArgs, bool]:
    """Checks the arguments and returns (canonical ScanArgs, plain_mode)."""
    for name, t in (("u", u), ("delta", delta), ("A", A), ("B", B), ("C", C)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"selective_scan: `{name}` must be a torch.Tensor, got {type(t).__name__}")
    optional = {"D": D, "z": z, "delta_bias": delta_bias}
    for name, t in optional.items():
        if t is not None and not isinstance(t, torch.Tensor):
            raise TypeError(f"selective_scan: `{name}` must be a torch.Tensor or None, got {type(t).__name__}")
    for name, t in (("u", u), ("delta", delta), ("A", A), ("B", B), ("C", C), *optional.items()):
        if t is None:
            continue
        if t.dtype not in FLOAT_DTYPES:
            raise TypeError(f"selective_scan: `{name}` must be float16, bfloat16, float32 or float64, got {t.dtype}")
        if t.device != u.device:
            raise ValueError(f"selective_scan: `{name}` is on {t.device} but `u` is on {u.device}")
    if A.is_complex():
        raise TypeError("selective_scan: `A` must be real")
    if merge not in MERGES:
        raise ValueError(f"selective_scan: `merge` must be one of {MERGES}, got {merge!r}")

    given_u = u  # shape errors quote the caller's u
    plain = A.dim() == 2
    if plain:
        if index is not None:
            raise ValueError("selective_scan: `index` needs per-direction parameters: `A` of shape (K, D, N)")
        if u.dim() != 3:
            _fail("u", "(batch, dim, length) when `A` is (D, N)", u)
        batch, dim, length = u.shape
        if A.shape[0] != dim:
            _fail("A", f"(D, N) with D = u.shape[1] = {dim}", A)
        N = A.shape[1]
        _check_shape("delta", delta, [(batch, dim, length)], f"(B, D, L) = {(batch, dim, length)}", given_u)
        for name, t in (("B", B), ("C", C)):
            if t.dim() == 3:
                _check_shape(name, t, [(batch, N, length)], f"(B, N, L) = {(batch, N, length)} or (B, G, N, L)", given_u)
            elif t.dim() != 4 or (t.shape[0], t.shape[2], t.shape[3]) != (batch, N, length):
                _fail(name, f"(B, N, L) = {(batch, N, length)} or (B, G, N, L)", t, given_u)
        u, delta, A = u.unsqueeze(1), delta.unsqueeze(1), A.unsqueeze(0)
        B = B.unsqueeze(1) if B.dim() == 3 else B
        C = C.unsqueeze(1) if C.dim() == 3 else C
        B = B.unsqueeze(1) if B.dim() == 4 else B
        C = C.unsqueeze(1) if C.dim() == 4 else C
        if D is not None:
            _check_shape("D", D, [(dim,)], f"({dim},)")
            D = D.unsqueeze(0)
        if delta_bias is not None:
            _check_shape("delta_bias", delta_bias, [(dim,)], f"({dim},)")
            delta_bias = delta_bias.unsqueeze(0)
        if z is not None:
            _check_shape("z", z, [(batch, dim, length)], f"(B, D, L) = {(batch, dim, length)}", given_u)
            z = z.unsqueeze(1)
    else:
        if A.dim() != 3:
            _fail("A", "(D, N), or (K, D, N) for K directions", A)
        K, dim, N = A.shape
        if u.dim() not in (3, 4) or (u.dim() == 4 and u.shape[1] not in (1, K)) or u.shape[-2] != dim:
            _fail("u", f"(B, D, L) or (B, K, D, L) with K={K}, D={dim}", u)
        u = u if u.dim() == 4 else u.unsqueeze(1)
        batch, _, _, length = u.shape
        _check_shape("delta", delta, [(batch, K, dim, length)], f"(B, K, D, L) = {(batch, K, dim, length)}", given_u)
        for name, t in (("B", B), ("C", C)):
            if t.dim() == 4:
                _check_shape(name, t, [(batch, K, N, length)],
                             f"(B, K, N, L) = {(batch, K, N, length)} or (B, K, G, N, L)", given_u)
            elif t.dim() != 5 or (t.shape[0], t.shape[1], t.shape[3], t.shape[4]) != (batch, K, N, length):
                _fail(name, f"(B, K, N, L) = {(batch, K, N, length)} or (B, K, G, N, L)", t, given_u)
        B = B.unsqueeze(2) if B.dim() == 4 else B
        C = C.unsqueeze(2) if C.dim() == 4 else C
        if D is not None:
            _check_shape("D", D, [(K, dim)], f"(K, D) = {(K, dim)}")
        if delta_bias is not None:
            _check_shape("delta_bias", delta_bias, [(K, dim)], f"(K, D) = {(K, dim)}")
        if z is not None:
            if tuple(z.shape) not in ((batch, dim, length), (batch, 1, dim, length), (batch, K, dim, length)):
                _fail("z", f"(B, D, L) or (B, K, D, L) = {(batch, K, dim, length)}", z, given_u)
            z = z if z.dim() == 4 else z.unsqueeze(1)
        if index is not None:
            index = check_index(index, K, length, u.device)
    if B.shape[2] != C.shape[2]:
        raise ValueError(f"selective_scan: `B` and `C` must have the same number of groups, got {B.shape[2]} and {C.shape[2]}")
    groups = B.shape[2]
    if dim % groups:
        raise ValueError(f"selective_scan: the number of groups of `B`/`C` ({groups}) must divide D ({dim})")
    args = ScanArgs(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus), index, merge)
    return args, plain
