"""The scan-strategy base class.

A strategy turns an H×W grid into K token orders: an index map of shape (K, H*W) whose
row k lists, in scan order, the row-major positions p = i*W + j visited by direction k.
The base class caches the maps per (H, W, device) and does the torch-side gather, scatter
and merge; a family only implements :meth:`ScanStrategy.build_orders`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

MERGES = ("sum", "mean")


def check_int(option: str, value, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``; errors name ``option``."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_floating_point():
        value = int(value)  # sizes read from a traced tensor's shape (torch.jit.trace)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{option}` must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"`{option}` must be an int >= {minimum}, got {value}")
    return int(value)


def check_choice(option: str, value, choices: Sequence):
    if value not in choices:
        raise ValueError(f"`{option}` must be one of {tuple(choices)}, got {value!r}")
    return value


def _device_key(device) -> torch.device:
    device = torch.device("cpu") if device is None else torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


class ScanStrategy:
    """Base class of every scan strategy (see the package docstring for a full example).

    Subclasses set ``direction_names`` (class attribute, or instance attribute in
    ``__init__`` when it depends on options) and implement ``build_orders(H, W)``.  A subclass
    with options declares them in its own ``__init__`` and passes them to ``super().__init__``;
    a subclass without ``__init__`` takes no options.
    """

    name: str = "scan"
    merge: str = "sum"
    direction_names: tuple = ()

    def __init__(self, **options):
        if options and type(self).__init__ is ScanStrategy.__init__:
            raise TypeError(f"{type(self).__name__} takes no options, got {', '.join(map(repr, options))}; "
                            f"declare them in its __init__ and pass them to super().__init__")
        self._options = dict(options)
        self._orders: dict = {}
        self._inverses: dict = {}

    # ----------------------------------------------------------------- description
    @property
    def options(self) -> dict:
        return dict(self._options)

    @property
    def num_directions(self) -> int:
        return len(self.direction_names)

    @property
    def merge_factor(self) -> int:
        """merge(scatter(gather(x))) == merge_factor * x: K for "sum", 1 for "mean"."""
        check_choice("merge", self.merge, MERGES)
        return self.num_directions if self.merge == "sum" else 1

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self._options.items())
        return f"{type(self).__name__}(name={self.name!r}{opts}, K={self.num_directions}, merge={self.merge!r})"

    # ----------------------------------------------------------------- orders
    def build_orders(self, H: int, W: int):
        """K sequences (rows), each a permutation of range(H*W) in scan order."""
        raise NotImplementedError

    @torch.compiler.disable  # built once per grid with numpy and cached: not for tracing
    def orders(self, H: int, W: int, device=None) -> torch.Tensor:
        """The (K, H*W) int64 index map, cached per (H, W, device): treat it as read-only."""
        H, W = check_int("H", H), check_int("W", W)
        key = (H, W, _device_key(device))
        cached = self._orders.get(key)
        if cached is None:
            if key[2].type == "cpu":
                cached = torch.from_numpy(self._checked_orders(H, W))
            else:
                cached = self.orders(H, W).to(key[2])
            self._orders[key] = cached
        return cached

    def inverse_orders(self, H: int, W: int, device=None) -> torch.Tensor:
        """(K, H*W): inverse[k, p] is the step at which direction k visits position p."""
        H, W = check_int("H", H), check_int("W", W)
        key = (H, W, _device_key(device))
        cached = self._inverses.get(key)
        if cached is None:
            order = self.orders(H, W, key[2])
            steps = torch.arange(H * W, device=order.device).expand_as(order)
            cached = torch.empty_like(order).scatter_(1, order, steps)
            self._inverses[key] = cached
        return cached

    def _checked_orders(self, H: int, W: int) -> np.ndarray:
        rows = [self._as_positions(r, k, H, W) for k, r in enumerate(self.build_orders(H, W))]
        K, L = self.num_directions, H * W
        if K < 1:
            raise ValueError(f"scan {self.name!r} has no directions (direction_names is empty)")
        if len(rows) != K:
            raise ValueError(f"scan {self.name!r}: build_orders({H}, {W}) gave {len(rows)} orders, "
                             f"expected num_directions={K}")
        for k, row in enumerate(rows):
            if row.shape != (L,):
                raise ValueError(f"scan {self.name!r}: order {k} ({self.direction_names[k]}) for H={H}, W={W} "
                                 f"must be 1-D with H*W={L} positions, got shape {row.shape}")
            if not np.array_equal(np.sort(row), np.arange(L)):
                raise ValueError(f"scan {self.name!r}: order {k} ({self.direction_names[k]}) for "
                                 f"H={H}, W={W} is not a permutation of range({L})")
        return np.stack(rows)

    def _as_positions(self, row, k: int, H: int, W: int) -> np.ndarray:
        """One direction's order as int64 positions; non-integer values are an error, never truncated."""
        row = row.detach().cpu().numpy() if isinstance(row, torch.Tensor) else np.asarray(row)
        if row.dtype.kind not in "iu":
            name = self.direction_names[k] if k < len(self.direction_names) else k
            raise ValueError(f"scan {self.name!r}: order {k} ({name}) for H={H}, W={W} must hold integer "
                             f"positions, got dtype {row.dtype}")
        return row.astype(np.int64)

    # ----------------------------------------------------------------- torch side
    def _check_tokens(self, x: torch.Tensor, H: int, W: int, dims: tuple, what: str):
        if not isinstance(x, torch.Tensor) or x.dim() not in dims or x.shape[-1] != H * W:
            raise ValueError(f"{type(self).__name__}.{what}: expected {' or '.join(map(str, dims))}-D "
                             f"input with last dim H*W={H * W}, got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")

    def _check_directions(self, y: torch.Tensor, what: str):
        if y.dim() != 4 or y.shape[1] != self.num_directions:
            raise ValueError(f"{type(self).__name__}.{what}: expected (B, K={self.num_directions}, C, L), "
                             f"got {tuple(y.shape)}")

    def gather(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        """(B, C, H*W) image order -> (B, K, C, L) scan order.

        A (B, K, C, L) input (one sequence per direction, image order) is also accepted.
        """
        self._check_tokens(x, H, W, (3, 4), "gather")
        order = self.orders(H, W, x.device)
        K, L = order.shape
        if x.dim() == 3:
            B, C, _ = x.shape
            return x.index_select(-1, order.reshape(-1)).view(B, C, K, L).transpose(1, 2)
        self._check_directions(x, "gather")
        return torch.gather(x, -1, order[None, :, None, :].expand(x.shape))

    def scatter(self, y: torch.Tensor, H: int, W: int) -> torch.Tensor:
        """(B, K, C, L) scan order -> (B, K, C, L) image order."""
        self._check_tokens(y, H, W, (4,), "scatter")
        self._check_directions(y, "scatter")
        inverse = self.inverse_orders(H, W, y.device)
        return torch.gather(y, -1, inverse[None, :, None, :].expand(y.shape))

    def merge_outputs(self, y: torch.Tensor) -> torch.Tensor:
        """(B, K, C, L) image order -> (B, C, L): sum or mean over the K directions."""
        self._check_directions(y, "merge_outputs")
        check_choice("merge", self.merge, MERGES)
        return y.sum(1) if self.merge == "sum" else y.mean(1)

    def scan_merge(self, y: torch.Tensor, H: int, W: int) -> torch.Tensor:
        """(B, K, C, L) scan order -> (B, C, L) image order, merged."""
        return self.merge_outputs(self.scatter(y, H, W))
