"""Sparse gradients (SGD, Adagrad) and differentiable steps, against torch."""

from __future__ import annotations

import pytest
import torch

import polyoptim


def sparse_grad(step: int, shape=(6, 3)):
    g = torch.Generator().manual_seed(step)
    rows = torch.tensor([[step % 6, (step + 2) % 6, step % 6]])  # a repeated row: uncoalesced
    vals = torch.randn(3, shape[1], generator=g)
    return torch.sparse_coo_tensor(rows, vals, shape)


@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("SGD", dict(lr=0.1)),
        ("SGD", dict(lr=0.1, momentum=0.9)),
        ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, maximize=True)),
        ("Adagrad", dict(lr=0.1)),
        ("Adagrad", dict(lr=0.1, lr_decay=0.1, initial_accumulator_value=0.5, maximize=True)),
    ],
    ids=str,
)
def test_sparse_gradients_match_torch(name, kw):
    init = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    pa, pb = init.clone(), init.clone()
    ta, pbo = getattr(torch.optim, name)([pa], **kw), getattr(polyoptim, name)([pb], **kw)
    for s in range(6):
        pa.grad, pb.grad = sparse_grad(s), sparse_grad(s)
        ta.step()
        pbo.step()
        torch.testing.assert_close(pb, pa)
    for k, v in ta.state[pa].items():
        got = pbo.state[pb][k]
        if v.is_sparse:
            v, got = v.to_dense(), got.to_dense()
        torch.testing.assert_close(got, v)


def test_sparse_errors_match_torch():
    for mod in (torch.optim, polyoptim):
        p = torch.zeros(6, 3)
        p.grad = sparse_grad(0)
        with pytest.raises(RuntimeError, match="weight_decay option is not compatible"):
            mod.Adagrad([p], weight_decay=0.1).step()
        with pytest.raises(RuntimeError, match="does not support sparse gradients"):
            mod.Adam([p]).step()
        with pytest.raises(RuntimeError, match="`_fused_sgd` does not support sparse gradients"):
            mod.SGD([p], lr=0.1, fused=True).step()


@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("SGD", dict(lr=0.1, momentum=0.9)),
        ("Adam", dict(lr=0.1)),
        ("RMSprop", dict(lr=0.1, centered=True)),
        ("Adagrad", dict(lr=0.1)),
        ("NAdam", dict(lr=0.1)),
    ],
    ids=str,
)
def test_differentiable_step_has_torchs_gradient(name, kw):
    """With differentiable=True autograd follows the step: d(loss after step)/d(initial params)
    equals torch's."""

    def meta_grad(mod):
        w0 = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
        w = w0.clone()  # a non-leaf, so the in-place step is recorded
        opt = getattr(mod, name)([w], differentiable=True, **kw)
        for _ in range(2):
            w.grad = (2 * w).detach()  # d/dw of w^2 (fixed: the meta-gradient flows through w)
            opt.step()
        (w**2).sum().backward()
        return w0.grad

    torch.testing.assert_close(meta_grad(polyoptim), meta_grad(torch.optim))
