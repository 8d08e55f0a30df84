"""The OpenMMLab backbones: what their necks expect, checkpoints, freezing, clear errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("mmdet")
pytest.importorskip("mmseg")

import timm  # noqa: E402
import torch  # noqa: E402

import vision_ssm.mmlab  # noqa: E402,F401
from vision_ssm.mmlab import PretrainedBackboneError, VimBackbone, VMambaBackbone  # noqa: E402

from conftest import CONFIGS, load_config  # noqa: E402

pytestmark = pytest.mark.mmlab

MANIFESTS = Path("/work/shared/reference/manifests")
FULL_CONFIGS = sorted(p for task in ("segmentation", "detection", "tracking") for p in (CONFIGS / task).glob("*.py"))
from vision_ssm.mmlab.toy_twins import TWINS  # noqa: E402

CONTROLS = {CONFIGS / t.control for t in TWINS if t.control}  # OpenMMLab's own backbones
TOY_CONFIGS = sorted(p for task in ("segmentation", "detection", "tracking")
                     for p in (CONFIGS / task / "toy").glob("*.py") if p not in CONTROLS)


def _expectations(model_cfg):
    """(backbone cfg, channels the neck / head expects, strides it expects) of a model config."""
    det = model_cfg.get("detector", model_cfg)
    backbone = det["backbone"]
    if "decode_head" in det:  # UperNet: one level per stride 4, 8, 16, 32
        return backbone, list(det["decode_head"]["in_channels"]), [4, 8, 16, 32]
    neck = det["neck"]
    if neck["type"] == "FPN":  # RPN anchors and RoI extractors at 4..32 (+ FPN's extra level 64)
        strides = list(det["roi_head"]["bbox_roi_extractor"]["featmap_strides"])
        assert list(det["rpn_head"]["anchor_generator"]["strides"])[:4] == strides
        return backbone, list(neck["in_channels"]), strides
    if neck["type"] == "YOLOXPAFPN":
        return backbone, list(neck["in_channels"]), list(det["bbox_head"]["strides"])
    raise AssertionError(f"unexpected neck {neck['type']}")


def _build_backbone(cfg_dict):
    from mmdet.registry import MODELS
    cfg = dict(cfg_dict)
    cfg.pop("init_cfg", None)
    return MODELS.build(cfg)


# Published parameter counts (millions, VMamba authors) of the complete detectors / segmentors
PUBLISHED_PARAMS_M = {
    "mask-rcnn_vanilla-vmamba-t": 42, "mask-rcnn_vanilla-vmamba-s": 64, "mask-rcnn_vanilla-vmamba-b": 96,
    "mask-rcnn_vmamba-t-s2l5": 50, "mask-rcnn_vmamba-s-s2l15": 70, "mask-rcnn_vmamba-b-s2l15": 108,
    "mask-rcnn_vmamba-t-s1l8": 50,
    "upernet_vanilla-vmamba-t": 55, "upernet_vanilla-vmamba-s": 76, "upernet_vanilla-vmamba-b": 110,
    "upernet_vmamba-t-s2l5": 62, "upernet_vmamba-s-s2l15": 82, "upernet_vmamba-b-s2l15": 122,
    "upernet_vmamba-t-s1l8": 62,
}


@pytest.mark.parametrize("path", FULL_CONFIGS + TOY_CONFIGS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_backbone_gives_what_the_neck_expects(path):
    """The whole model builds (on the meta device: structure only, no memory, no weights); its
    backbone's channels and strides are what the neck / heads are configured for, and the
    published configs have the published parameter counts."""
    from mmengine.registry import DefaultScope
    cfg = load_config(path)
    backbone_cfg, channels, strides = _expectations(cfg.model)
    scope = cfg.get("default_scope", "mmdet")
    with DefaultScope.overwrite_default_scope(scope), torch.device("meta"):
        model = __import__(f"{scope}.registry", fromlist=["MODELS"]).MODELS.build(cfg.model)
    backbone = model.detector.backbone if hasattr(model, "detector") else model.backbone
    assert backbone.out_channels == channels, path.name
    assert backbone.out_strides == strides, path.name
    published = PUBLISHED_PARAMS_M.get(path.name.split("_fpn")[0].split("_8xb")[0])
    if published is not None:
        params = sum(p.numel() for p in model.parameters()) / 1e6
        assert round(params) == published, (path.name, params)


@pytest.mark.parametrize("kind", ["vmamba", "vmamba-hilbert", "vanilla", "vim-multi", "vim-simple", "vim-plain"])
def test_toy_backbones_forward_shapes(kind):
    if kind == "vmamba":
        b = VMambaBackbone(arch="vmamba_tiny_s1l8", dims=16, depths=(1, 1, 1, 1))
    elif kind == "vmamba-hilbert":  # any registered scan strategy
        b = VMambaBackbone(arch="vmamba_tiny_s1l8", dims=16, depths=(1, 1, 1, 1), scan="hilbert")
        assert type(b.trunk.scan).__name__.lower().startswith("hilbert")
    elif kind == "vanilla":
        b = VMambaBackbone(arch="vanilla_vmamba_tiny", dims=16, depths=(1, 1, 1, 1), out_indices=(1, 2, 3))
    elif kind == "vim-multi":
        b = VimBackbone(arch="vim_tiny_patch16_224", embed_dim=32, depth=4, out_indices=(0, 1, 2, 3),
                        img_size=64, pyramid="multi")
    elif kind == "vim-simple":
        b = VimBackbone(arch="vim_tiny_patch16_224", embed_dim=32, depth=4, out_indices=(3,), img_size=64,
                        pyramid="simple")
    else:
        b = VimBackbone(arch="vim_tiny_patch16_224", embed_dim=32, depth=4, out_indices=(1, 3), img_size=64)
    x = torch.randn(2, 3, 96, 128)  # not the img_size: Vim interpolates its position embedding
    feats = b(x)
    assert [f.shape[1] for f in feats] == b.out_channels
    assert [(96 // s, 128 // s) for s in b.out_strides] == [tuple(f.shape[-2:]) for f in feats]
    # mmcv's RoIAlign (every RoI head) reads what torchvision's reads, whatever the memory layout
    from mmcv.ops import RoIAlign
    from torchvision.ops import roi_align
    rois = torch.tensor([[0, 3.0, 5.0, 60.0, 40.0], [1, 20.0, 10.0, 120.0, 90.0]])
    with torch.no_grad():
        for f, stride in zip(feats, b.out_strides):
            ours = RoIAlign((7, 7), 1 / stride, sampling_ratio=2, aligned=True)(f, rois)
            torch.testing.assert_close(ours, roi_align(f, rois, (7, 7), 1 / stride, 2, aligned=True))


def test_frozen_stages_and_norm_eval():
    b = VMambaBackbone(arch="vmamba_tiny_s1l8", dims=16, depths=(1, 1, 1, 1), frozen_stages=2, norm_eval=True)
    b.train()
    frozen = {n for n, p in b.named_parameters() if not p.requires_grad}
    assert any(n.startswith("model.model.patch_embed") for n in frozen)
    assert any(n.startswith("model.model.layers.1.") for n in frozen)
    assert not any(n.startswith("model.model.layers.2.") for n in frozen)
    assert {"outnorm0.weight", "outnorm1.weight"} <= frozen and "outnorm2.weight" not in frozen
    assert not b.trunk.layers[0].training and b.trunk.layers[2].training
    v = VimBackbone(arch="vim_tiny_patch16_224", embed_dim=32, depth=4, out_indices=(3,), img_size=64,
                    pyramid="simple", pyramid_norm="bn", frozen_stages=1, norm_eval=True)
    v.train()
    assert not v.trunk.pos_embed.requires_grad and not v.trunk.cls_token.requires_grad
    assert not any(p.requires_grad for p in v.trunk.layers[0].parameters())
    assert all(p.requires_grad for p in v.trunk.layers[1].parameters())
    bns = [m for m in v.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    with pytest.raises(ValueError, match="frozen_stages=9"):
        VMambaBackbone(arch="vmamba_tiny_s1l8", dims=16, depths=(1, 1, 1, 1), frozen_stages=9)


# ---------------------------------------------------------------- checkpoints
def _train_py_checkpoint(path, arch, **kwargs):
    """A checkpoint as tools/train.py writes it: {'model': state_dict, 'epoch', 'args'}."""
    model = timm.create_model(arch, num_classes=10, **kwargs)
    torch.save({"model": model.state_dict(), "epoch": 1,
                "args": {"model": arch, "lr": 1e-3, "epochs": 1, "model_kwargs": kwargs}}, path)
    return model


def _assert_loaded(backbone, reference):
    ref = reference.state_dict()
    for k, v in backbone.trunk.state_dict().items():
        assert torch.equal(v, ref[k]), k


def test_train_py_checkpoint_loads_with_no_missing_keys(tmp_path, monkeypatch, caplog):
    ckpt = tmp_path / "vmamba.pth"
    ref = _train_py_checkpoint(ckpt, "vmamba_tiny_s1l8", dims=16, depths=(1, 1, 1, 1))
    b = VMambaBackbone(arch="vmamba_tiny_s1l8", dims=16, depths=(1, 1, 1, 1),
                       init_cfg=dict(type="Pretrained", checkpoint=str(ckpt)))
    built, create = [], timm.create_model
    monkeypatch.setattr(timm, "create_model", lambda *a, **k: built.append(create(*a, **k)) or built[-1])
    b.init_weights()
    _assert_loaded(b, ref)
    # loaded into the backbone's own (pruned) model: any model built meanwhile is a meta one (keys, no weights)
    assert all(p.is_meta for m in built for p in m.parameters())
    # the pruned head is set aside, not "adapted" by the model's filter (no misleading classifier warning)
    assert not [r for r in caplog.records if "does not fit the model" in r.getMessage()]
    report = b.load_pretrained(str(ckpt))
    assert all(k.startswith("classifier.") for k in report["ignored"])  # only the pruned head / norm
    assert report["added"] == sorted(f"outnorm{i}.{p}" for i in range(4) for p in ("weight", "bias"))

    ckpt = tmp_path / "vim.pth"
    ref = _train_py_checkpoint(ckpt, "vim_tiny_patch16_224", embed_dim=32, depth=4, img_size=64)
    v = VimBackbone(arch="vim_tiny_patch16_224", embed_dim=32, depth=4, out_indices=(1, 3), img_size=64,
                    init_cfg=dict(type="Pretrained", checkpoint=str(ckpt)))
    v.init_weights()
    _assert_loaded(v, ref)


def test_url_and_hub_checkpoints_go_through_timm(tmp_path, monkeypatch):
    """URLs and 'hf-hub:' names are resolved by timm's own download functions (patched here to a
    local file: no network) and then loaded by the same loader."""
    import timm.models._builder as timm_builder
    import timm.models._hub as timm_hub
    ckpt = tmp_path / "v.pth"
    ref = _train_py_checkpoint(ckpt, "vmamba_tiny_s1l8", dims=16, depths=(1, 1, 1, 1))
    seen = []
    monkeypatch.setattr(timm_builder, "download_cached_file", lambda url, *a, **k: seen.append(url) or str(ckpt))
    monkeypatch.setattr(timm_builder, "has_hf_hub", lambda necessary=False: True)
    monkeypatch.setattr(timm_hub, "has_hf_hub", lambda necessary=False: True)

    def fake_hub_download(repo_id, filename, **kwargs):
        if filename != "v.pth":  # timm first asks for a safetensors alternative
            raise timm_hub.EntryNotFoundError(filename)
        seen.append((repo_id, filename))
        return str(ckpt)

    monkeypatch.setattr(timm_hub, "hf_hub_download", fake_hub_download)
    for source in ("https://example.invalid/weights/v.pth", "hf-hub:owner/repo/v.pth"):
        b = VMambaBackbone(arch="vmamba_tiny_s1l8", dims=16, depths=(1, 1, 1, 1),
                           init_cfg=dict(type="Pretrained", checkpoint=source))
        b.init_weights()
        _assert_loaded(b, ref)
    assert seen[0] == "https://example.invalid/weights/v.pth" and seen[1][:2] == ("owner/repo", "v.pth")
    # pretrained=True: the arch's default weights (the official VMamba release), fetched the same way
    b = VMambaBackbone(arch="vmamba_tiny_s1l8", dims=16, depths=(1, 1, 1, 1), pretrained=True)
    b.init_weights()
    _assert_loaded(b, ref)
    assert seen[2].startswith("https://github.com/MzeroMiko/VMamba/releases/") and \
        seen[2].endswith("/vssm1_tiny_0230s_ckpt_epoch_264.pth")

    import urllib.error

    from vision_ssm.models import PretrainedLoadError

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(timm_builder, "download_cached_file", offline)
    b = VMambaBackbone(arch="vmamba_tiny_s1l8", dims=16, depths=(1, 1, 1, 1),
                       init_cfg=dict(type="Pretrained", checkpoint="https://example.invalid/weights/v.pth"))
    with pytest.raises(PretrainedLoadError, match=r"could not download https://example\.invalid/weights/v\.pth"):
        b.init_weights()


def _manifest_checkpoint(name, path):
    manifest = json.loads((MANIFESTS / f"{name}.json").read_text())
    gen = torch.Generator().manual_seed(0)
    sd = {k: torch.randn(shape, generator=gen) * 0.02 for k, shape in manifest["state_dict"].items()}
    torch.save({"model": sd, "epoch": 300}, path)
    return sd


@pytest.mark.parametrize("manifest,backbone", [
    ("vmamba_v2_tiny_s1l8", dict(type="VMambaBackbone", arch="vmamba_tiny_s1l8")),
    ("vmamba_v0_tiny", dict(type="VMambaBackbone", arch="vanilla_vmamba_tiny")),
    ("vim_tiny", dict(type="VimBackbone", arch="vim_tiny_patch16_224", img_size=512, pyramid="multi")),
])
def test_official_layout_checkpoint_loads_with_no_missing_keys(tmp_path, manifest, backbone):
    if not (MANIFESTS / f"{manifest}.json").is_file():
        pytest.skip("reference manifests not available")
    ckpt = tmp_path / f"{manifest}.pth"
    sd = _manifest_checkpoint(manifest, ckpt)
    b = _build_backbone(dict(backbone, init_cfg=None))
    report = b.load_pretrained(str(ckpt))
    trunk = b.trunk.state_dict()  # the strict timm load inside load_pretrained: no missing keys
    for k in ("patch_embed.0.weight", "patch_embed.proj.weight"):
        if k in trunk and k in sd:
            assert torch.equal(trunk[k], sd[k])
    if "pos_embed" in trunk:  # Vim at 512: interpolated from the 14x14 grid
        assert trunk["pos_embed"].shape[1] == 32 * 32 + 1
    assert set(report["ignored"]) <= {"head.weight", "head.bias", "norm_f.weight", "classifier.norm.weight",
                                      "classifier.norm.bias", "classifier.head.weight", "classifier.head.bias"}


def test_wrong_architecture_checkpoint_fails_clearly(tmp_path):
    ckpt = tmp_path / "vim.pth"
    _train_py_checkpoint(ckpt, "vim_tiny_patch16_224", embed_dim=32, depth=2, img_size=64)
    b = VMambaBackbone(arch="vmamba_tiny_s1l8", dims=16, depths=(1, 1, 1, 1),
                       init_cfg=dict(type="Pretrained", checkpoint=str(ckpt)))
    with pytest.raises(PretrainedBackboneError, match=r"does not fit this architecture.*missing keys"):
        b.init_weights()
    ckpt = tmp_path / "deeper.pth"
    _train_py_checkpoint(ckpt, "vmamba_tiny_s1l8", dims=16, depths=(1, 1, 2, 1))
    b = VMambaBackbone(arch="vmamba_tiny_s1l8", dims=16, depths=(1, 1, 1, 1),
                       init_cfg=dict(type="Pretrained", checkpoint=str(ckpt)))
    with pytest.raises(PretrainedBackboneError, match=r"unexpected keys: layers\.2\.blocks\.1"):
        b.init_weights()
    with pytest.raises(FileNotFoundError, match="not found"):
        VMambaBackbone(arch="vmamba_tiny_s1l8", dims=16, depths=(1, 1, 1, 1),
                       init_cfg=dict(type="Pretrained", checkpoint=str(tmp_path / "nope.pth"))).init_weights()


def test_wrong_scan_or_arch_in_a_config_fails_clearly():
    from mmengine.config import Config
    from mmdet.registry import MODELS
    cfg = Config.fromfile(str(CONFIGS / "detection/toy/mask-rcnn_vmamba-toy_fpn_1x_coco.py"))
    cfg.model.backbone.scan = "crosss"
    with pytest.raises(Exception, match=r"unknown scan 'crosss'; available scans: .*cross"):
        MODELS.build(cfg.model)
    cfg.model.backbone.scan = "cross"
    cfg.model.backbone.arch = "vmamba_tiny_s9"
    with pytest.raises(Exception, match=r"unknown arch 'vmamba_tiny_s9'; the vmamba models are: .*vmamba_tiny_s1l8"):
        MODELS.build(cfg.model)


def test_every_published_count_has_its_config():
    names = {p.name.split("_fpn")[0].split("_8xb")[0] for p in FULL_CONFIGS}
    assert set(PUBLISHED_PARAMS_M) <= names


def test_layer_decay_optimizer_for_vim():
    """The Vim recipe's layer-wise lr decay: lr * rate ** (num_layers - layer_id) in the backbone,
    the base lr in the heads, no weight decay for norms, biases, position embedding, class token."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    cfg = load_config(CONFIGS / "segmentation/toy/upernet_vim-toy_ade20k-64x64.py")
    cfg.model.backbone.update(class_token=True, global_pool="token")  # the recipe has none; check its decay
    with DefaultScope.overwrite_default_scope("mmseg"):
        model = MODELS.build(cfg.model)
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    lr = cfg.optim_wrapper.optimizer.lr
    rate = cfg.optim_wrapper.paramwise_cfg.layer_decay_rate
    groups = {id(g["params"][0]): g for g in wrapper.optimizer.param_groups}
    named = dict(model.named_parameters())

    def group(name):
        return groups[id(named[name])]
    layers = model.backbone.num_lr_layers()  # depth + 1
    assert group("backbone.model.model.pos_embed")["lr"] == pytest.approx(lr * rate ** layers)
    assert group("backbone.model.model.pos_embed")["weight_decay"] == 0
    assert group("backbone.model.model.cls_token")["weight_decay"] == 0
    w0 = "backbone.model.model.layers.0.mixer.in_proj.weight"
    w3 = "backbone.model.model.layers.3.mixer.in_proj.weight"
    assert group(w0)["lr"] == pytest.approx(lr * rate ** (layers - 1))
    assert group(w3)["lr"] == pytest.approx(lr * rate ** (layers - 4))
    assert group(w0)["weight_decay"] == cfg.optim_wrapper.optimizer.weight_decay
    assert group("decode_head.conv_seg.weight")["lr"] == pytest.approx(lr)
    assert group("decode_head.conv_seg.bias")["weight_decay"] == 0


# ---------------------------------------------------------------- pretrained= / init_cfg
def test_pretrained_path_loads_that_checkpoint(tmp_path):
    """mmseg's ``model.pretrained=PATH`` (copied onto the backbone) and ``backbone.pretrained=PATH``
    load PATH, not the arch's default weights."""
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    ckpt = tmp_path / "vim.pth"
    ref = _train_py_checkpoint(ckpt, "vim_tiny_patch16_224", embed_dim=32, depth=4, img_size=64,
                               class_token=False, global_pool="avg")  # as the recipe's backbone
    cfg = load_config(CONFIGS / "segmentation/toy/upernet_vim-toy_ade20k-64x64.py")
    cfg.model.pretrained = str(ckpt)
    with DefaultScope.overwrite_default_scope("mmseg"):
        model = MODELS.build(cfg.model)
    model.init_weights()
    _assert_loaded(model.backbone, ref)

    ckpt = tmp_path / "vmamba.pth"
    ref = _train_py_checkpoint(ckpt, "vmamba_tiny_s1l8", dims=16, depths=(1, 1, 1, 1))
    b = VMambaBackbone(arch="vmamba_tiny_s1l8", dims=16, depths=(1, 1, 1, 1), pretrained=str(ckpt))
    b.init_weights()
    _assert_loaded(b, ref)
    with pytest.raises(ValueError, match=r"both pretrained=.*vmamba\.pth.* and init_cfg="):
        VMambaBackbone(arch="vmamba_tiny_s1l8", dims=16, depths=(1, 1, 1, 1), pretrained=str(ckpt),
                       init_cfg=dict(type="Pretrained", checkpoint=str(ckpt)))
    with pytest.raises(TypeError, match="pretrained must be"):
        VMambaBackbone(arch="vmamba_tiny_s1l8", dims=16, depths=(1, 1, 1, 1), pretrained=3)


def _detector_checkpoint(path, backbone_sd, prefix="backbone."):
    """A checkpoint as mmengine's Runner writes it: the backbone under ``prefix``, a neck beside it, and the
    message hub's HistoryBuffers (outside the zoo's own allow-list)."""
    from mmengine.logging import HistoryBuffer
    sd = {prefix + k: v for k, v in backbone_sd.items()}
    sd["neck.lateral_convs.0.conv.weight"] = torch.randn(8, 16, 1, 1)
    loss = HistoryBuffer()
    loss.update(0.5)
    torch.save({"meta": {"epoch": 12}, "state_dict": sd, "message_hub": {"log_scalars": {"train/loss": loss}}}, path)


@pytest.fixture
def no_global_allow_list():
    """No safe globals registered for the whole process (compat.apply()'s), as in a fresh interpreter."""
    registered = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    yield
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(registered)


def test_init_cfg_prefix_reads_the_backbone_of_a_detector_checkpoint(tmp_path, no_global_allow_list):
    # official layout (a detector trained with the official VMamba backbone): trunk + outnorms
    ref = timm.create_model("vmamba_tiny_s1l8", dims=16, depths=(1, 1, 1, 1))
    outnorms = {f"outnorm{i}.{p}": torch.randn(16 * 2 ** i) for i in range(4) for p in ("weight", "bias")}
    ckpt = tmp_path / "mask_rcnn_official.pth"
    _detector_checkpoint(ckpt, {**{k: v for k, v in ref.state_dict().items() if not k.startswith("classifier.")},
                                **outnorms})
    b = VMambaBackbone(arch="vmamba_tiny_s1l8", dims=16, depths=(1, 1, 1, 1),
                       init_cfg=dict(type="Pretrained", checkpoint=str(ckpt), prefix="backbone."))
    b.init_weights()
    _assert_loaded(b, ref)
    for k, v in outnorms.items():
        assert torch.equal(b.state_dict()[k], v), k

    # this wrapper's layout (a detector / segmentor trained here), Vim with its pyramid
    kwargs = dict(arch="vim_tiny_patch16_224", embed_dim=32, depth=4, out_indices=(0, 1, 2, 3), img_size=64,
                  pyramid="multi")
    trained = VimBackbone(**kwargs)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(torch.randn_like(p))
    ckpt = tmp_path / "upernet_ours.pth"
    _detector_checkpoint(ckpt, trained.state_dict())
    v = VimBackbone(**kwargs, init_cfg=dict(type="Pretrained", checkpoint=str(ckpt), prefix="backbone."))
    v.init_weights()
    expected = trained.state_dict()
    for k, t in v.state_dict().items():
        assert torch.equal(t, expected[k]), k

    with pytest.raises(PretrainedBackboneError, match=r"prefix='encoder\.'"):
        VMambaBackbone(arch="vmamba_tiny_s1l8", dims=16, depths=(1, 1, 1, 1),
                       init_cfg=dict(type="Pretrained", checkpoint=str(ckpt), prefix="encoder.")).init_weights()


def test_init_cfg_errors_and_other_init_types(tmp_path):
    small = dict(arch="vmamba_tiny_s1l8", dims=16, depths=(1, 1, 1, 1))
    with pytest.raises(ValueError, match="has no checkpoint"):
        VMambaBackbone(**small, init_cfg=dict(type="Pretrained"))
    with pytest.raises(ValueError, match=r"unknown keys \['strict'\]"):
        VMambaBackbone(**small, init_cfg=dict(type="Pretrained", checkpoint="timm", strict=False))
    with pytest.raises(ValueError, match=r"init_cfg=.* has 2 Pretrained entries"):
        VMambaBackbone(**small, init_cfg=[dict(type="Pretrained", checkpoint="a.pth"),
                                          dict(type="Pretrained", checkpoint="b.pth")])
    with pytest.raises(TypeError, match="init_cfg must be a dict or a list of dicts"):
        VMambaBackbone(**small, init_cfg="a.pth")
    # a Constant init on the output norms; with a Pretrained entry the checkpoint wins in the trunk
    b = VMambaBackbone(**small, init_cfg=dict(type="Constant", val=0.5, bias=0.25, layer="LayerNorm2d"))
    b.init_weights()
    assert torch.all(b.outnorm3.weight == 0.5) and torch.all(b.outnorm3.bias == 0.25)
    ckpt = tmp_path / "vmamba.pth"
    ref = _train_py_checkpoint(ckpt, "vmamba_tiny_s1l8", dims=16, depths=(1, 1, 1, 1))
    b = VMambaBackbone(**small, init_cfg=[dict(type="Pretrained", checkpoint=str(ckpt)),
                                          dict(type="Constant", val=0.5, layer="LayerNorm2d")])
    b.init_weights()
    _assert_loaded(b, ref)
    assert torch.all(b.outnorm0.weight == 0.5)


# ---------------------------------------------------------------- out_indices / pyramid
def test_out_indices_must_be_unique_sorted_and_in_range():
    small = dict(arch="vmamba_tiny_s1l8", dims=16, depths=(1, 1, 1, 1))
    for bad in ((2, 1), (0, 0), (3, -1)):
        with pytest.raises(ValueError, match=r"out_indices=.*each in 0\.\.3 .*unique and in increasing order"):
            VMambaBackbone(**small, out_indices=bad)
    with pytest.raises(ValueError, match=r"out_indices=\(0, 4\) out of range: expected each in 0\.\.3"):
        VMambaBackbone(**small, out_indices=(0, 4))
    with pytest.raises(TypeError, match="out_indices must be a non-empty sequence of ints"):
        VMambaBackbone(**small, out_indices=3)
    b = VMambaBackbone(**small, out_indices=(1, -1))  # the last stage: 16 * 8 channels at stride 32
    assert b.out_indices == (1, 3)
    feats = b(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape) for f in feats] == [(1, 32, 8, 8), (1, 128, 2, 2)]
    vim = dict(arch="vim_tiny_patch16_224", embed_dim=32, depth=4, img_size=64)
    with pytest.raises(ValueError, match=r"out_indices=\(3, 1\) must be each in 0\.\.3"):
        VimBackbone(**vim, out_indices=(3, 1))
    with pytest.raises(ValueError, match=r"out_indices=\(1, 6\) out of range: expected each in 0\.\.3"):
        VimBackbone(**vim, out_indices=(1, 6))
    assert VimBackbone(**vim, out_indices=(-1,)).out_indices == (3,)


def test_pyramid_options_that_would_be_ignored_are_errors():
    vim = dict(arch="vim_tiny_patch16_224", embed_dim=32, depth=4, img_size=64)
    with pytest.raises(ValueError, match=r"pyramid='simple' .*exactly one out index"):
        VimBackbone(**vim, out_indices=(1, 3), pyramid="simple")
    with pytest.raises(ValueError, match=r"pyramid_norm='bn' needs a pyramid"):
        VimBackbone(**vim, out_indices=(1, 3), pyramid_norm="bn")
    s8 = dict(vim, arch="vim_tiny_patch16_stride8_224", out_indices=(0, 1, 2, 3), pyramid="multi")
    with pytest.raises(ValueError, match=r"pyramid_norm='syncbn' is unused at patch stride 8"):
        VimBackbone(**s8, pyramid_norm="syncbn")
    assert VimBackbone(**s8).out_strides == [4, 8, 16, 32]
    b = VimBackbone(**vim, out_indices=(2,), pyramid="simple")  # every level gets a gradient
    sum(f.sum() for f in b(torch.randn(1, 3, 64, 64))).backward()
    assert b.norms[0].weight.grad is not None


def test_vim_mixer_features_are_what_each_block_adds():
    """feature_type='mixer' (official Vim-T segmentation): block i's output is the change it makes to the
    residual stream, i.e. the difference of the 'stream' features of blocks i and i - 1."""
    kw = dict(arch="vim_tiny_patch16_224", embed_dim=32, depth=4, img_size=64, out_norm=False, class_token=False)
    torch.manual_seed(0)
    stream = VimBackbone(**kw, out_indices=(1, 2, 3)).eval()
    mixer = VimBackbone(**kw, out_indices=(2, 3), feature_type="mixer").eval()
    mixer.load_state_dict(stream.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        s1, s2, s3 = stream(x)
        m2, m3 = mixer(x)
    torch.testing.assert_close(m2, s2 - s1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(m3, s3 - s2, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"feature_type must be one of \('stream', 'mixer'\), got 'residual'"):
        VimBackbone(**kw, feature_type="residual")


def test_vim_stream_features_with_rope_are_what_the_next_block_receives():
    """rope=True (official Vim-S segmentation): the stream output of a block before the last is taken
    after the turn the next block applies, so f_i + m_{i+1} (its mixer output) is the next stream
    before its turn; the last block's stream is not turned."""
    from vision_ssm.layers.rope import RotaryEmbedding2d
    kw = dict(arch="vim_tiny_patch16_224", embed_dim=32, depth=4, img_size=64, out_norm=False, class_token=False,
              rope=True)
    torch.manual_seed(0)
    stream = VimBackbone(**kw, out_indices=(1, 2, 3)).eval()
    mixer = VimBackbone(**kw, out_indices=(2, 3), feature_type="mixer").eval()
    mixer.load_state_dict(stream.state_dict())
    turn = RotaryEmbedding2d(32, (4, 4))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        f1, f2, f3 = stream(x)
        m2, m3 = mixer(x)
    turned = turn((f1 + m2).flatten(2).transpose(1, 2), (4, 4)).transpose(1, 2).reshape(f1.shape)
    torch.testing.assert_close(f2, turned, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(f3, f2 + m3, rtol=1e-5, atol=1e-5)


def test_vim_last_block_stream_is_added_without_drop_path():
    """Official last_layer_process='add' joins the last mixer output to the stream without drop-path: a
    training forward of a stream output of the model's last block is deterministic; earlier blocks keep theirs."""
    kw = dict(arch="vim_tiny_patch16_224", embed_dim=32, depth=2, img_size=64, class_token=False,
              drop_path_rate=0.9)  # rates linspace(0, 0.9): only block 1 (the last) drops
    x = torch.randn(4, 3, 64, 64)
    last = VimBackbone(**kw, out_indices=(1,)).train()
    torch.testing.assert_close(last(x)[0], last(x)[0])
    mixer = VimBackbone(**kw, out_indices=(1,), feature_type="mixer").train()
    assert not isinstance(mixer.trunk.layers[-1].drop_path, torch.nn.Identity)


def _official_seg_features(trunk, x, out_indices, use_residual_as_feature):
    """hustvl/Vim seg/backbone/vim.py's loop (if_rope, if_rope_residual, last_layer_process='add') on our
    blocks: layer i returns (hidden = mixer output, residual = the stream it was given)."""
    tokens, (H, W) = trunk._embed(x)
    orders = trunk.scan_orders(H, W, tokens.device)
    hidden, residual, feats = tokens, None, []
    for i, layer in enumerate(trunk.layers):
        hidden = trunk.rope(hidden, (H, W))
        residual = hidden if residual is None else trunk.rope(residual, (H, W)) + hidden
        hidden = layer.mixer(layer.norm(residual), orders)
        if use_residual_as_feature and i - 1 in out_indices:
            feats.append(residual)
        elif not use_residual_as_feature and i in out_indices:
            feats.append(hidden)
    if use_residual_as_feature and out_indices[-1] == len(trunk.layers) - 1:
        feats.append(hidden + residual)
    return [f.transpose(1, 2).reshape(x.shape[0], -1, H, W) for f in feats]


@pytest.mark.parametrize("feature_type", ["stream", "mixer"])
def test_vim_features_equal_the_official_segmentation_loop(feature_type):
    kw = dict(arch="vim_tiny_patch16_224", embed_dim=32, depth=4, img_size=64, out_norm=False, class_token=False,
              rope=True, feature_type=feature_type)
    torch.manual_seed(0)
    full = VimBackbone(**kw, out_indices=(3,)).eval()
    x = torch.randn(2, 3, 48, 80)  # another size than built, not square
    for out in ((0, 1, 2, 3), (1, 2)):
        backbone = VimBackbone(**kw, out_indices=out).eval()
        full.trunk.load_state_dict(backbone.trunk.state_dict(), strict=False)
        with torch.no_grad():
            ours = backbone(x)
            official = _official_seg_features(full.trunk, x, out, feature_type == "stream")
        assert len(ours) == len(official) == len(out)
        for a, b in zip(ours, official):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- optimizer and the Vim recipe
@pytest.mark.parametrize("key,value", [("custom_keys", {"pos_embed": dict(decay_mult=0.0)}),
                                       ("norm_decay_mult", 0.0), ("bias_decay_mult", 0.0),
                                       ("num_layers", 24)])
def test_layer_decay_constructor_rejects_keys_it_would_ignore(key, value):
    from mmengine.optim import build_optim_wrapper
    cfg = dict(type="OptimWrapper", constructor="LayerDecayOptimWrapperConstructor",
               optimizer=dict(type="AdamW", lr=1e-4, weight_decay=0.05),
               paramwise_cfg={"layer_decay_rate": 0.9, key: value})
    with pytest.raises(ValueError, match=rf"unsupported paramwise_cfg keys \['{key}'\]"):
        build_optim_wrapper(torch.nn.Linear(2, 2), cfg)


def test_vim_upernet_recipes_are_the_official_runs():
    """hustvl/Vim seg/scripts/ft_vim_tiny_upernet.sh: optimizer.lr=2e-4 optimizer.weight_decay=0.1 (layer
    decay 0.92 from the config); ft_vim_small_upernet.sh: optimizer.lr=1e-4, layer_decay_rate=0.95
    (weight decay 0.05 from the config)."""
    from mmengine.config import Config
    official = {"upernet_vim-t_4xb8-60k_ade20k-512x512.py": (2e-4, 0.1, 0.92),
                "upernet_vim-s_4xb8-60k_ade20k-512x512.py": (1e-4, 0.05, 0.95)}
    for name, (lr, wd, rate) in official.items():
        optim = Config.fromfile(str(CONFIGS / "segmentation" / name)).optim_wrapper
        assert (optim.optimizer.lr, optim.optimizer.weight_decay, optim.paramwise_cfg.layer_decay_rate) == \
            (lr, wd, rate), name


def test_vim_recipes_use_the_official_backbones():
    """hustvl/Vim seg/backbone/vim.py (VisionMambaSeg) and det/.../backbone/vim.py (VisionMambaDet): no
    class token, no norm on the outputs; UperNet Vim-T's features are the blocks' mixer outputs
    (use_residual_as_feature=False), Vim-S's the residual stream (ft_vim_small_upernet.sh:
    use_residual_as_feature=True, last_layer_process=add), the detector's the stream (last_layer_process=add);
    the Vim-S UperNet and the detector turn the stream by the rotary embedding (if_rope=True, pt_hw_seq_len=14)."""
    from mmengine.config import Config
    official = {"segmentation/upernet_vim-t_4xb8-60k_ade20k-512x512.py": ("mixer", False),
                "segmentation/upernet_vim-s_4xb8-60k_ade20k-512x512.py": ("stream", True),
                "detection/cascade-mask-rcnn_vim-t_simple-fpn_lsj-100e_coco.py": ("stream", True)}
    for name, (feature_type, rope) in official.items():
        b = Config.fromfile(str(CONFIGS / name)).model.backbone
        assert (b.feature_type, b.class_token, b.out_norm) == (feature_type, False, False), name
        assert (b.get("rope", False), b.get("rope_pretrain_grid", 14)) == (rope, 14), name


def test_ln2d_norm_of_necks_and_heads_is_read_right_by_roi_align():
    """``norm_cfg=dict(type='LN2d')`` (ViTDet's simple FPN and heads): a LayerNorm over channels whose
    output mmcv's RoIAlign reads as torchvision's does (a channels-last result was misread)."""
    from mmcv.cnn import build_norm_layer
    from mmcv.ops import RoIAlign
    from torchvision.ops import roi_align
    _, norm = build_norm_layer(dict(type="LN2d", requires_grad=True), 8)
    x = torch.randn(2, 8, 12, 20)
    y = norm(x)
    expected = (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, unbiased=False, keepdim=True) + norm.eps)
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)
    rois = torch.tensor([[0, 1.0, 2.0, 15.0, 10.0], [1, 4.0, 0.0, 19.0, 11.0]])
    torch.testing.assert_close(RoIAlign((5, 5), 1.0, sampling_ratio=2, aligned=True)(y, rois),
                               roi_align(y, rois, (5, 5), 1.0, 2, aligned=True))


def test_importing_the_plugin_patches_nothing():
    """The OpenMMLab fixes (compat.apply) come with the Runner our tools build, not with the import that
    registers the backbones: a fresh interpreter has neither np.float nor mmengine's allow-list after it."""
    import subprocess
    import sys
    code = ("import numpy as np, torch, vision_ssm.mmlab\n"
            "from mmdet.registry import MODELS as DET\n"
            "from mmseg.registry import MODELS as SEG\n"
            "assert DET.get('VMambaBackbone') is SEG.get('VMambaBackbone') is vision_ssm.mmlab.VMambaBackbone\n"
            "assert DET.get('VimBackbone') is SEG.get('VimBackbone') is vision_ssm.mmlab.VimBackbone\n"
            "from mmengine.logging import HistoryBuffer\n"
            "assert 'float' not in np.__dict__ and HistoryBuffer not in torch.serialization.get_safe_globals()\n"
            "from vision_ssm.mmlab import compat\n"
            "compat.apply()\n"
            "assert 'float' in np.__dict__ and HistoryBuffer in torch.serialization.get_safe_globals()\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
