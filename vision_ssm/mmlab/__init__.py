"""OpenMMLab plugin: Vision Mamba backbones for mmdet 3.x and mmseg 1.x.

Load it from a config with::

    custom_imports = dict(imports=['vision_ssm.mmlab'], allow_failed_imports=False)

Importing it applies the compatibility fixes of :mod:`vision_ssm.mmlab.compat` (torch 2.6+
``weights_only`` loading of mmengine checkpoints, NumPy 2) and registers ``VMambaBackbone`` and
``VimBackbone`` in the ``MODELS`` registries of mmdet and mmseg (whichever are installed), and
``LayerDecayOptimWrapperConstructor`` in mmengine's, and the ``LN2d`` norm (for ``norm_cfg``).
"""
from . import compat

compat.apply()

from .backbones import PretrainedBackboneError, VimBackbone, VMambaBackbone  # noqa: E402
from .optim import LayerDecayOptimWrapperConstructor  # noqa: E402
from .utils import set_data_root  # noqa: E402

__all__ = ["VMambaBackbone", "VimBackbone", "PretrainedBackboneError", "LayerDecayOptimWrapperConstructor",
           "set_data_root", "REGISTERED_IN"]


def _register() -> list:
    """Registers the backbones in every installed OpenMMLab MODELS registry (mmdet, mmseg)."""
    done = []
    for package in ("mmdet", "mmseg"):
        try:
            registry = __import__(f"{package}.registry", fromlist=["MODELS"]).MODELS
        except ImportError:
            continue
        for cls in (VMambaBackbone, VimBackbone):
            if registry.module_dict.get(cls.__name__) is not cls:
                registry.register_module(module=cls, force=True)
        done.append(package)
    if not done:
        raise ImportError("vision_ssm.mmlab needs mmdet and/or mmseg (run tools/install_mmlab.sh)")
    _register_norms()
    return done


def _register_norms() -> None:
    """``norm_cfg=dict(type='LN2d')``: a LayerNorm over the channels of NCHW maps (ViTDet's heads)."""
    from mmengine.registry import MODELS

    from .backbones import ContiguousLayerNorm2d
    if "LN2d" not in MODELS.module_dict:
        MODELS.register_module("LN2d", module=ContiguousLayerNorm2d)


REGISTERED_IN = _register()
