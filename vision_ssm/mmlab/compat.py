"""Fixes that let OpenMMLab (mmengine 0.10, mmcv 2.1, mmdet 3.3, mmseg 1.2) run on torch 2.14 and NumPy 2.
Everything happens at OUR boundary: no installed file is edited.

Each fix is needed only inside an mmengine Runner (loading its own checkpoints for ``--resume`` / ``load_from``
/ testing, mmdet's YouTube-VIS evaluator, ByteTrack's MOT post-processing), so ``apply()`` (idempotent) is
called where this package builds one: ``vision_ssm.mmlab.cli.build_runner`` (tools/mm_train.py,
tools/mm_test.py) and ``vision_ssm.mmlab.toy_twins.train_and_test``; importing the plugin patches nothing.
A Runner built elsewhere (mmdet's / mmseg's own tools/train.py) needs ``compat.apply()`` called first.  The
backbones read a detector's checkpoint with :func:`mmengine_checkpoint_globals` for that read only.
"""
from __future__ import annotations

import pickle
from typing import Any, List

import numpy as np
import torch

_APPLIED = False
# the statistics HistoryBuffer registers for itself (HistoryBuffer._set_default_statistics)
_HISTORY_BUFFER_METHODS = ("min", "max", "current", "mean")


def _numpy_aliases() -> None:
    # NumPy 2 removed np.float; mmdet's YouTube-VIS evaluator (evaluation/functional/ytviseval.py) still uses it.
    if "float" not in np.__dict__:
        np.float = float  # type: ignore[attr-defined]


def _interpolate_tracklets_empty() -> None:
    # mmdet's InterpolateTracklets (ByteTrack's MOT post-processing) indexes pred_tracks[:, 1] and crashes the
    # whole MOT evaluation when a video has no track at all; such a video now keeps its (empty) result.
    try:
        from mmdet.models.task_modules.tracking.interpolation import InterpolateTracklets
    except ImportError:
        return
    original = InterpolateTracklets.forward
    if getattr(original, "_vision_ssm_compat", False):
        return

    def forward(self, pred_tracks):
        if np.asarray(pred_tracks).size == 0:
            return np.zeros((0, 7))
        return original(self, pred_tracks)

    forward._vision_ssm_compat = True
    InterpolateTracklets.forward = forward


def _history_buffer_getattr(owner: Any, name: str) -> Any:
    """``getattr`` restricted to what mmengine pickles: HistoryBuffer's statistics methods.

    mmengine's ``HistoryBuffer.__getstate__`` stores its ``_statistics_methods`` dict, whose values
    (``HistoryBuffer.min`` ...) pickle as ``getattr(HistoryBuffer, 'min')``.  Registering this
    function under the name ``builtins.getattr`` lets exactly those references load and nothing else.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if owner is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f"weights_only load: refusing getattr({getattr(owner, '__name__', owner)!r}, {name!r}); only "
        f"mmengine HistoryBuffer statistics methods are allowed")


def mmengine_checkpoint_globals() -> List[Any]:
    """Exactly the non-tensor globals found in checkpoints written by mmengine's Runner.

    (Listed with ``torch.serialization.get_unsafe_globals_in_checkpoint`` on the checkpoints of the
    toy segmentation, detection, ByteTrack (with its EMA) and MaskTrack R-CNN runs: the message
    hub's HistoryBuffers, the NumPy arrays / scalars in them (float64 and int64 only) and the
    buffers' statistics methods.  Containers such as OrderedDict are allowed by torch already.)
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    try:  # NumPy 2 moved the pickling helpers to numpy._core
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # NumPy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    return [
        HistoryBuffer,
        np.ndarray, np.dtype, _reconstruct, scalar,
        # the dtypes those arrays / scalars have (float64 values, int64 counts); NumPy 2 rebuilds a
        # dtype as an instance of its DType class, which the unpickler must also allow
        type(np.dtype("float64")), type(np.dtype("int64")),
        (_history_buffer_getattr, "builtins.getattr"),
    ]


def _torch_load_allow_list() -> None:
    # torch>=2.6 loads with weights_only=True; allow-list the objects mmengine's own checkpoints hold
    # (load_from / --resume) instead of ever turning weights_only off.
    torch.serialization.add_safe_globals(mmengine_checkpoint_globals())


def apply() -> None:
    """Applies every workaround once."""
    global _APPLIED
    if _APPLIED:
        return
    _numpy_aliases()
    _torch_load_allow_list()
    _interpolate_tracklets_empty()
    _APPLIED = True


__all__ = ["apply", "mmengine_checkpoint_globals"]
