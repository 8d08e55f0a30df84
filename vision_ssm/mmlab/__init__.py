"""OpenMMLab plugin: Vision Mamba backbones for mmdet 3.x and mmseg 1.x.

Load it from a config with::

    custom_imports = dict(imports=['vision_ssm.mmlab'], allow_failed_imports=False)

Importing it registers ``VMambaBackbone``, ``VimBackbone`` and the ``LN2d`` norm (for ``norm_cfg``) in
mmengine's ``MODELS`` registry, which mmdet's and mmseg's ``MODELS`` search as their parent, and
``LayerDecayOptimWrapperConstructor`` in mmengine's optimizer-wrapper constructors.  It patches nothing:
the fixes of :mod:`vision_ssm.mmlab.compat` are applied where an mmengine Runner is built
(``cli.build_runner``, ``toy_twins.train_and_test``).
"""
from .backbones import ContiguousLayerNorm2d, PretrainedBackboneError, VimBackbone, VMambaBackbone
from .optim import LayerDecayOptimWrapperConstructor
from .utils import set_data_root

__all__ = ["VMambaBackbone", "VimBackbone", "ContiguousLayerNorm2d", "PretrainedBackboneError",
           "LayerDecayOptimWrapperConstructor", "set_data_root"]
