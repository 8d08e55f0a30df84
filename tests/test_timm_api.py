"""timm's model API on every registered model: ``device`` / ``dtype`` factory arguments, the meta
device, and heads that follow the trunk's device and dtype."""
import pytest
import timm
import torch

import vision_ssm  # noqa: F401  (registers the models)

MODELS = timm.list_models(module=["vmamba", "vim"])


def test_every_family_is_registered():
    assert any(m.startswith("vmamba") for m in MODELS) and any(m.startswith("vim") for m in MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_meta_device_builds_and_infers_shapes(name):
    model = timm.create_model(name, device="meta", num_classes=7)
    assert {p.device.type for p in model.parameters()} == {"meta"}
    size = model.pretrained_cfg["input_size"][-1]
    out = model(torch.empty(2, 3, size, size, device="meta"))
    assert out.shape == (2, 7) and out.device.type == "meta"


@pytest.mark.parametrize("name", MODELS)
def test_dtype_argument_and_reset_classifier_follow_the_trunk(name):
    model = timm.create_model(name, device="meta", dtype=torch.bfloat16, num_classes=7)
    floating = {p.dtype for p in model.parameters()} | {b.dtype for b in model.buffers() if b.is_floating_point()}
    assert floating == {torch.bfloat16}
    model.reset_classifier(3)
    head = model.get_classifier()
    assert head.weight.dtype == torch.bfloat16 and head.weight.device.type == "meta"
    assert head.out_features == 3


@pytest.mark.parametrize("name", ["vmamba_tiny_s1l8", "vim_tiny_patch16_224"])
def test_bfloat16_model_classifies_after_reset(name):
    """A real forward: the new head must match the bf16 trunk or the matmul raises."""
    small = dict(img_size=32, depths=[1, 1, 1, 1], dims=16) if name.startswith("vmamba") else \
        dict(img_size=32, depth=2, embed_dim=32)
    model = timm.create_model(name, dtype=torch.bfloat16, num_classes=5, **small).eval()
    model.reset_classifier(4)
    with torch.no_grad():
        out = model(torch.rand(2, 3, 32, 32, dtype=torch.bfloat16))
    assert out.shape == (2, 4) and out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def test_bad_dtype_names_the_argument():
    with pytest.raises(ValueError, match="dtype"):
        timm.create_model("vim_tiny_patch16_224", device="meta", dtype=torch.int64)


@pytest.mark.parametrize("pool", ["avg", "max", "avgmax"])
def test_vim_token_pools_match_their_definition(pool):
    model = timm.create_model("vim_tiny_patch16_224", img_size=32, depth=1, embed_dim=32, class_token=False,
                              global_pool=pool, num_classes=3).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        tokens = model.forward_features(x)
        expected = {"avg": tokens.mean(1), "max": tokens.amax(1),
                    "avgmax": 0.5 * (tokens.mean(1) + tokens.amax(1))}[pool]
        assert torch.allclose(model.forward_head(tokens, pre_logits=True), expected)
    with pytest.raises(ValueError, match="global_pool"):
        model.reset_classifier(3, global_pool="median")


@pytest.mark.parametrize("name", ["vmamba_tiny_s1l8", "vim_tiny_patch16_224"])
def test_wrong_channel_count_names_in_chans(name):
    model = timm.create_model(name, device="meta")
    with pytest.raises(ValueError, match="in_chans"):
        model(torch.empty(1, 1, 224, 224, device="meta"))
