"""FX symbolic tracing of every registered model: torch.fx.symbolic_trace, timm's feature_cls='fx' and the
feature extractors of timm and torchvision, each against the eager model."""
import pytest
import timm
import torch
import torchvision.models.feature_extraction as tv_features
from timm.models import create_feature_extractor

import vision_ssm  # noqa: F401  (registers the models)

MODELS = timm.list_models(module=["vmamba", "vim"])

# torchvision's note that train and eval graphs differ (dropout / drop-path nodes)
pytestmark = pytest.mark.filterwarnings("ignore:NOTE. The nodes obtained by tracing")


def _small(name):
    """(constructor arguments, input size) of a small model of the variant."""
    if name.startswith("vim"):
        return dict(img_size=32, depth=2, embed_dim=32), 32
    return dict(depths=[1, 1, 1, 1], dims=16), 64


def _create(name, **kwargs):
    small, size = _small(name)
    torch.manual_seed(0)
    return timm.create_model(name, **small, **kwargs).eval(), torch.randn(2, 3, size, size)


@pytest.mark.parametrize("name", MODELS)
def test_symbolic_trace_matches_eager(name):
    model, x = _create(name, num_classes=5)
    graph = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        torch.testing.assert_close(graph(x), model(x))
    with pytest.raises(ValueError, match="in_chans"):  # the input checks are part of the graph
        graph(torch.randn(1, 1, x.shape[-2], x.shape[-1]))


@pytest.mark.parametrize("name", MODELS)
def test_fx_features_match_the_default_features(name):
    default, x = _create(name, features_only=True)
    fx, _ = _create(name, features_only=True, feature_cls="fx")
    assert fx.feature_info.channels() == default.feature_info.channels()
    with torch.no_grad():
        expected, got = default(x), fx(x)
    assert [f.shape for f in got] == [f.shape for f in expected]
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", ["vmamba_tiny_s1l8", "vanilla_vmamba_tiny", "vim_tiny_patch16_224"])
def test_feature_extractors_of_timm_and_torchvision(name):
    model, x = _create(name, num_classes=5)
    last = model.feature_info[-1]["module"]
    with torch.no_grad():
        logits = model(x)
        for extract in (create_feature_extractor, tv_features.create_feature_extractor):
            out = extract(model, {last: "feature", "classifier.head" if name.startswith("vmamba")
                                  or name.startswith("vanilla") else "head": "logits"})(x)
            torch.testing.assert_close(out["logits"], logits)
            assert out["feature"].shape[0] == 2


def test_vim_options_trace():
    """Non-default Vim paths: another image size (dynamic_img_size), rotary embedding, four directions."""
    for kwargs, size in ((dict(dynamic_img_size=True), (48, 64)),
                         (dict(class_token=False, global_pool="avg", rope=True, scan="cross"), (32, 32))):
        model = timm.create_model("vim_tiny_patch16_224", img_size=32, depth=2, embed_dim=32, num_classes=5,
                                  **kwargs).eval()
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            torch.testing.assert_close(torch.fx.symbolic_trace(model)(x), model(x))
