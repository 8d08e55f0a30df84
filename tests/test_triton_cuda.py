"""The compiled Triton kernels at the backbones' real shapes (CUDA only; skipped without a GPU).

Each scan shape is checked against the float64 sequential reference (run on the CPU, where its
step loop is quick) in forward and every gradient, with the shipped launch settings and the
inputs laid out as the backbones make them (see ``vision_ssm.bench.kernels.make_inputs``); the
whole VMamba-T and Vim-T models are checked against the torch backend.  Errors are measured as
||out - ref|| / ||ref|| per tensor."""
import pytest
import torch

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA device (compiled Triton kernels)", allow_module_level=True)
pytest.importorskip("triton")

import timm  # noqa: E402

import vision_ssm  # noqa: E402,F401  (registers the models)
from vision_ssm.bench.kernels import ScanShape, make_inputs  # noqa: E402
from vision_ssm.ops import selective_scan  # noqa: E402

pytestmark = pytest.mark.cuda

# ||out - ref|| / ||ref||: fp32 kernels land far below 1e-4; bf16 inputs and outputs round at 2^-8
REL_TOL = {torch.float32: 1e-4, torch.bfloat16: 1e-2}
GRAD_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")

SHAPES = [  # (shape, batch checked against the reference): the length and channels matter, not the batch
    (ScanShape("vmamba_t.stage1", 2, 4, 96, 56, 56, 1, "cross"), 2),
    (ScanShape("vmamba_b.stage1", 2, 4, 256, 56, 56, 1, "cross"), 2),
    (ScanShape("vmamba_t.stage4", 8, 4, 768, 7, 7, 1, "cross"), 8),
    (ScanShape("vmamba_t.stage1_d16", 1, 4, 96, 56, 56, 16, "cross"), 1),
    (ScanShape("vim_t", 4, 2, 384, 1, 197, 16, "bidirectional", shared_u=False, gate=True), 4),
    (ScanShape("vim_s.1248px", 1, 2, 768, 1, 78 * 78 + 1, 16, "bidirectional", shared_u=False, gate=True), 1),
]


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    a, e = actual.detach().double(), expected.detach().double()
    assert a.shape == e.shape, f"shape {tuple(a.shape)} != {tuple(e.shape)}"
    assert torch.isfinite(a).all(), "non-finite values"
    return ((a - e).norm() / e.norm().clamp_min(1e-30)).item()


def _scan(inputs, backend, **overrides):
    kw = dict(inputs, **overrides)
    return selective_scan(kw["u"], kw["delta"], kw["A"], kw["B"], kw["C"], D=kw["D"], z=kw["z"],
                          delta_bias=kw["delta_bias"], delta_softplus=True, index=kw["index"],
                          merge="sum" if kw["index"] is not None else "none", backend=backend)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("shape,batch", SHAPES, ids=[s.name for s, _ in SHAPES])
def test_real_shape_against_reference(shape, batch, dtype):
    inputs = make_inputs(shape, "cuda", dtype=dtype, seed=3)
    inputs = {k: (v[:batch] if k in ("u", "delta", "B", "C", "z") and v is not None else v)
              for k, v in inputs.items()}
    names = [n for n in GRAD_NAMES if inputs.get(n) is not None]
    leaves = {n: inputs[n].detach().requires_grad_() for n in names}
    ref_inputs = {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}
    ref_leaves = {n: ref_inputs[n].detach().double().requires_grad_() for n in names}
    y = _scan(inputs, "triton", **leaves)
    y_ref = _scan(ref_inputs, "ref", **ref_leaves)
    assert y.dtype == dtype
    errors = {"y": relative_error(y.cpu(), y_ref)}
    g = torch.randn(y.shape, dtype=torch.float32)
    got = torch.autograd.grad((y.float() * g.cuda()).sum(), list(leaves.values()))
    want = torch.autograd.grad((y_ref * g.double()).sum(), list(ref_leaves.values()))
    for n, a, e in zip(names, got, want):
        assert a.dtype == leaves[n].dtype, n
        errors[f"grad {n}"] = relative_error(a.cpu(), e)
    bad = {k: v for k, v in errors.items() if not v <= REL_TOL[dtype]}
    assert not bad, f"relative errors above {REL_TOL[dtype]}: {bad} (all: {errors})"


def _model_grads(model, images, dtype):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
        logits = model(images)
    logits.float().square().mean().backward()
    return logits.detach().float(), {n: p.grad.detach().clone() for n, p in model.named_parameters()
                                     if p.grad is not None}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("name", ["vmamba_tiny_s1l8", "vim_tiny_patch16_224"])
def test_model_triton_backend_equals_torch_backend(name, dtype):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=100).cuda()
    images = torch.randn(8, 3, 224, 224, device="cuda")

    def use(backend):
        for module in model.modules():
            if hasattr(module, "scan_backend"):
                module.scan_backend = backend

    use("torch")
    logits_torch, grads_torch = _model_grads(model, images, dtype)
    use("triton")
    logits_triton, grads_triton = _model_grads(model, images, dtype)
    assert grads_torch.keys() == grads_triton.keys()
    tol = 1e-3 if dtype == torch.float32 else 3e-2  # whole networks: errors compound over depth
    errors = {"logits": relative_error(logits_triton, logits_torch)}
    errors.update({n: relative_error(grads_triton[n], grads_torch[n]) for n in grads_torch})
    bad = {k: v for k, v in errors.items() if not v <= tol}
    assert not bad, f"{len(bad)} tensors above {tol}: {dict(list(bad.items())[:8])}"
