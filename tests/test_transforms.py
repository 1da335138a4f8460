"""Gradient transforms and per-step learning rates, against torch and closed forms."""

from __future__ import annotations

import pytest
import torch

import polyoptim
from polyoptim import transforms as T


def params(seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 3, generator=g, dtype=dtype), torch.randn(3, generator=g, dtype=dtype)]


def grads(step, like):
    g = torch.Generator().manual_seed(100 + step)
    return [torch.randn(p.shape, generator=g, dtype=p.dtype) * 3 for p in like]


def test_clip_by_global_norm_matches_torch_clip_grad_norm():
    pa, pb = params(), params()
    ta = torch.optim.SGD(pa, lr=0.1, momentum=0.9)
    pbo = polyoptim.SGD(pb, lr=0.1, momentum=0.9).add_transform(T.clip_by_global_norm(1.5))
    for s in range(5):
        for p, g in zip(pa, grads(s, pa)):
            p.grad = g
        for p, g in zip(pb, grads(s, pb)):
            p.grad = g
        torch.nn.utils.clip_grad_norm_(pa, 1.5)
        ta.step()
        pbo.step()
    for a, b in zip(pa, pb):
        torch.testing.assert_close(b, a)


@pytest.mark.parametrize("norm", [0.5, 100.0])
def test_clip_by_global_norm_paddle_convention_closed_form(norm):
    (w, b), lr = params(), 1.0
    w0, b0 = w.clone(), b.clone()
    gw, gb = grads(0, [w, b])
    w.grad, b.grad = gw, gb
    polyoptim.SGD([w, b], lr=lr).add_transform(
        T.clip_by_global_norm(norm, eps=0.0, always_scale=True)
    ).step()
    n = torch.sqrt((gw**2).sum() + (gb**2).sum())
    f = norm / max(n.item(), norm)
    torch.testing.assert_close(w, w0 - lr * gw * f)
    torch.testing.assert_close(b, b0 - lr * gb * f)


def test_where_excludes_parameters_from_norm_and_clip():
    w, b = params()
    w0, b0 = w.clone(), b.clone()
    gw, gb = grads(0, [w, b])
    w.grad, b.grad = gw.clone(), gb.clone()
    only_w = lambda p, group: p is w  # noqa: E731
    polyoptim.SGD([w, b], lr=1.0).add_transform(
        T.clip_by_global_norm(0.1, eps=0.0, where=only_w)
    ).step()
    torch.testing.assert_close(b, b0 - gb)  # untouched
    torch.testing.assert_close(w, w0 - gw * 0.1 / gw.norm())


def test_clip_by_value_and_norm_closed_forms():
    w = torch.tensor([3.0, -4.0, 0.5])
    w.grad = w.clone()
    polyoptim.SGD([w], lr=1.0).add_transform(T.clip_by_value(1.0, -2.0)).step()
    torch.testing.assert_close(w, torch.tensor([2.0, -2.0, 0.0]))
    v, u = torch.tensor([3.0, 4.0]), torch.tensor([0.3, 0.4])
    v.grad, u.grad = v.clone(), u.clone()
    polyoptim.SGD([v, u], lr=1.0).add_transform(T.clip_by_norm(1.0)).step()
    torch.testing.assert_close(v, torch.tensor([3 - 0.6, 4 - 0.8]))  # clipped to norm 1
    torch.testing.assert_close(u, torch.zeros(2))  # norm 0.5 < 1: unchanged gradient


def test_l2_regularize_equals_torch_weight_decay():
    pa, pb = params(), params()
    ta = torch.optim.Adam(pa, lr=0.01, weight_decay=0.2)
    pbo = polyoptim.Adam(pb, lr=0.01).add_transform(T.l2_regularize(0.2))
    for s in range(5):
        for p, g in zip(pa, grads(s, pa)):
            p.grad = g
        for p, g in zip(pb, grads(s, pb)):
            p.grad = g
        ta.step()
        pbo.step()
    for a, b in zip(pa, pb):
        torch.testing.assert_close(b, a)


def test_l1_centralize_scale_closed_forms():
    w = torch.tensor([[1.0, -2.0], [0.0, 3.0]])
    w0 = w.clone()
    w.grad = torch.tensor([[1.0, 3.0], [2.0, 2.0]])
    g0 = w.grad.clone()
    polyoptim.SGD([w], lr=1.0).add_transform(T.l1_regularize(0.5)).step()
    torch.testing.assert_close(w, w0 - (g0 + 0.5 * torch.sign(w0)))

    x = torch.zeros(2, 16)
    x.grad = torch.arange(32.0).reshape(2, 16)
    y = torch.zeros(2, 8)
    y.grad = torch.arange(16.0).reshape(2, 8)
    gx, gy = x.grad.clone(), y.grad.clone()
    polyoptim.SGD([x, y], lr=1.0).add_transform(T.centralize(divisible=16)).step()
    torch.testing.assert_close(x, -(gx - gx.mean(dim=1, keepdim=True)))
    torch.testing.assert_close(y, -gy)  # shape[1] = 8 is skipped

    z = torch.zeros(3)
    z.grad = torch.full((3,), 8.0)
    polyoptim.SGD([z], lr=1.0).add_transform(T.scale(0.25)).step()
    torch.testing.assert_close(z, torch.full((3,), -2.0))


def test_transforms_run_in_the_order_added():
    def run(order):
        w = torch.tensor([10.0])
        w.grad = torch.tensor([10.0])
        opt = polyoptim.SGD([w], lr=1.0)
        for t in order:
            opt.add_transform(t)
        opt.step()
        return w.item()

    clip, l2 = T.clip_by_value(1.0), T.l2_regularize(1.0)
    assert run([clip, l2]) == 10.0 - (1.0 + 10.0)
    assert run([l2, clip]) == 10.0 - 1.0


@pytest.mark.parametrize(
    "lr",
    [
        [0.1, 0.05, 0.02, 0.01],
        torch.tensor([0.1, 0.05, 0.02, 0.01]),
        lambda step: [0.1, 0.05, 0.02, 0.01][step],
    ],
    ids=["list", "tensor", "callable"],
)
def test_per_step_learning_rates(lr):
    """Element i is used at step i (closed form for SGD; the last one after the end)."""
    seq = [0.1, 0.05, 0.02, 0.01]
    w = torch.zeros(2)
    opt = polyoptim.SGD([w], lr=0.0)
    opt.param_groups[0]["lr"] = lr
    expected = torch.zeros(2)
    for s in range(4 if callable(lr) else 6):
        w.grad = torch.ones(2)
        opt.step()
        expected -= torch.tensor(seq[min(s, 3)], dtype=torch.float32)
        torch.testing.assert_close(w, expected)
    assert opt.global_step == (4 if callable(lr) else 6)


def test_schedule_drives_adam_like_torch_with_manual_lr():
    sched = [1e-2 * 0.5**s for s in range(6)]
    pa, pb = params(), params()
    ta, pbo = torch.optim.Adam(pa, lr=sched[0]), polyoptim.Adam(pb, lr=sched[0])
    pbo.param_groups[0]["lr"] = sched
    for s in range(6):
        ta.param_groups[0]["lr"] = sched[s]
        for p, g in zip(pa, grads(s, pa)):
            p.grad = g
        for p, g in zip(pb, grads(s, pb)):
            p.grad = g
        ta.step()
        pbo.step()
    for a, b in zip(pa, pb):
        torch.testing.assert_close(b, a)


def test_bad_learning_rate_kinds_are_refused():
    w = torch.zeros(2)
    w.grad = torch.ones(2)
    opt = polyoptim.SGD([w], lr=0.1)
    opt.param_groups[0]["lr"] = torch.ones(2, 2)
    with pytest.raises(ValueError, match="0-d or 1-D"):
        opt.step()
    opt.param_groups[0]["lr"] = "fast"
    with pytest.raises(TypeError, match="unsupported learning rate"):
        opt.step()
    torch.testing.assert_close(w, torch.zeros(2))
