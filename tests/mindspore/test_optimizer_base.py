"""The MindSpore base class: argument checks, group semantics, the gradient pipeline, the public
helpers user optimizers call, and the algorithms MindSpore has no CPU kernel for (Lamb, LARS,
gradient centralization), checked against independent numpy models of MindSpore's documented
rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polyoptim import mindspore as nn

f32 = np.float32


def _named(*shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    names = ["fc.weight", "bn.gamma", "bn.beta", "fc.bias", "conv.weight"]
    return [(n, torch.nn.Parameter(torch.randn(s, generator=g))) for n, s in zip(names, shapes)]


def _grads(params, k, seed=1):
    g = torch.Generator().manual_seed(seed * 1000 + k)
    return tuple(torch.randn(p.shape, generator=g) for p in params)


# -- argument checks ---------------------------------------------------------------------------
W = torch.nn.Parameter(torch.zeros(2))


@pytest.mark.parametrize(
    "make, exc, match",
    [
        # a str is an Iterable of per-step rates to MindSpore (tests/golden/mindspore/bad_inputs)
        (lambda: nn.SGD([W], learning_rate="0.1"), ValueError, "convert string to float: '.'"),
        (lambda: nn.SGD([W], learning_rate=None), TypeError, "learning_rate"),
        (lambda: nn.SGD([W], learning_rate=-0.1), ValueError, "learning rate"),
        (lambda: nn.SGD([W], learning_rate=torch.ones(2, 2)), ValueError, "dimension"),
        (lambda: nn.SGD(None), ValueError, "can not be None"),
        (lambda: nn.SGD(5), TypeError, "Iterable"),
        (lambda: nn.SGD([]), ValueError, "must not be empty"),
        (lambda: nn.SGD([W, {"params": [W]}]), TypeError, "'Parameter' or 'dict'"),
        (lambda: nn.SGD([1.0, 2.0]), TypeError, "'Parameter' or 'dict'"),
        (lambda: nn.SGD([W], loss_scale="8"), TypeError, "loss_scale"),
        (lambda: nn.SGD([W], loss_scale=0.0), ValueError, "loss_scale"),
        (lambda: nn.SGD([W], loss_scale=-1), ValueError, "loss_scale"),
        (lambda: nn.SGD([W], weight_decay=-0.1), ValueError, "weight_decay"),
        (lambda: nn.SGD([W], weight_decay="x"), TypeError, "eight_decay"),
        (lambda: nn.SGD([{"params": [W], "foo": 1}]), KeyError, "foo"),
        (
            lambda: nn.SGD([{"params": [W]}, {"order_params": [W], "lr": 0.1}]),
            ValueError,
            "order params",
        ),
        (lambda: nn.SGD([{"params": [W]}, {"params": [W]}]), RuntimeError, "already exists"),
        (lambda: nn.SGD([{"params": [1.0]}]), TypeError, "Parameter"),
        (lambda: nn.SGD([{"params": [W], "grad_centralization": 1}]), TypeError, "bool"),
        (
            lambda: nn.SGD([{"params": [W], "lr": torch.ones(3)}], learning_rate=torch.ones(2)),
            ValueError,
            "same size",
        ),
        (lambda: nn.SGD([W], weight_decay=nn.WarmUpLR(0.1, 2)), TypeError, "dynamic weight"),
        (lambda: nn.SGD([W], momentum=0.9, dampening=0.1, nesterov=True), ValueError, "nesterov"),
        (lambda: nn.Momentum([W], 0.1, 1), TypeError, "momentum"),
        (lambda: nn.Momentum([W], 0.1, -0.5), ValueError, "momentum"),
        (lambda: nn.Adam([W], beta1=1.0), ValueError, "beta1"),
        (lambda: nn.Adam([W], eps=0.0), ValueError, "eps"),
        (lambda: nn.Adam([W], foo=True), KeyError, "kwargs"),
        (lambda: nn.Adam([W], use_lazy=True, use_offload=True), ValueError, "both"),
        (lambda: nn.Adam([W], use_nesterov=1), TypeError, "use_nesterov"),
        (lambda: nn.FTRL([W], learning_rate=[0.1, 0.2]), ValueError, "dynamic learning rate"),
        (lambda: nn.FTRL([W], lr_power=0.5), ValueError, "lr_power"),
        (lambda: nn.Adagrad([W], accum=1), TypeError, "accum"),
        (lambda: nn.RMSProp([W], epsilon=0.0), ValueError, "epsilon"),
        (lambda: nn.Rprop([W], etas=[0.5, 1.2]), TypeError, "etas"),
        (lambda: nn.Rprop([W], etas=(0.5, 1.0)), ValueError, "etaplus"),
        (lambda: nn.Adadelta([W], rho=1.5), ValueError, "rho"),
        (lambda: nn.AdaFactor([W], learning_rate=0.1), ValueError, "relative_step"),
        (lambda: nn.AdaFactor([W], relative_step=False), ValueError, "None"),
        (lambda: nn.LARS(object()), TypeError, "optimizer"),
    ],
)
def test_argument_checks(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


# -- learning rates, weight decay, groups ---------------------------------------------------------
def test_learning_rate_kinds_and_get_lr():
    for lr, expected in (
        (0.1, [0.1] * 3),
        (1, [1.0] * 3),
        (torch.tensor(0.5), [0.5] * 3),
        ([0.3, 0.2, 0.1], [0.3, 0.2, 0.1]),
        ((x / 10 for x in (3, 2, 1)), [0.3, 0.2, 0.1]),
        (torch.tensor([0.3, 0.2, 0.1]), [0.3, 0.2, 0.1]),
        (nn.InverseDecayLR(0.3, 1.0, 1), [0.3, 0.15, 0.1]),
    ):
        w = torch.nn.Parameter(torch.zeros(1))
        opt = nn.SGD([w], learning_rate=lr)
        seen = []
        for _ in range(3):
            got = opt.get_lr()
            assert got.dtype == torch.float32 and got.dim() == 0
            seen.append(float(got))
            opt((torch.ones(1),))
        np.testing.assert_allclose(seen, expected, rtol=1e-6)
        assert float(w.detach()) == pytest.approx(-sum(seen), rel=1e-6)


def test_group_lr_is_absolute_and_per_parameter():
    (a, pa), (b, pb) = _named((2,), (2,))
    opt = nn.Momentum([{"params": [pa], "lr": 0.5}, {"params": [pb]}], 0.1, 0.0)
    lrs = opt.get_lr()
    assert [float(x) for x in lrs] == pytest.approx([0.5, 0.1])
    assert float(opt.get_lr_parameter(pa)) == 0.5
    assert [float(x) for x in opt.get_lr_parameter([pb, pa])] == pytest.approx([0.1, 0.5])
    with pytest.raises(ValueError, match="not in optimizer"):
        opt.get_lr_parameter(torch.nn.Parameter(torch.zeros(1)))
    with pytest.raises(TypeError):
        opt.get_lr_parameter("fc.weight")
    before = [pa.detach().clone(), pb.detach().clone()]
    opt((torch.ones(2), torch.ones(2)))
    assert torch.allclose(pa.detach(), before[0] - 0.5)
    assert torch.allclose(pb.detach(), before[1] - 0.1)


def test_default_decay_filter_and_groups():
    named = _named((3, 2), (2,), (2,))
    opt = nn.SGD(named, learning_rate=0.1, weight_decay=0.1, loss_scale=4.0)
    assert opt.decay_flags == (True, False, False)
    assert float(opt.get_weight_decay()) == pytest.approx(0.4)  # x loss_scale, as stored
    params = [p for _, p in named]
    grads = tuple(torch.ones_like(p) for p in params)
    decayed = opt.decay_weight(grads)
    assert torch.allclose(decayed[0], 1 + 0.4 * params[0].detach())
    assert torch.equal(decayed[1], grads[1]) and torch.equal(decayed[2], grads[2])
    assert torch.allclose(opt.scale_grad(decayed)[0], (1 + 0.4 * params[0].detach()) / 4)
    # with groups every parameter of a group with wd > 0 is decayed, names do not matter
    grouped = nn.SGD(
        [{"params": [params[1]], "weight_decay": 0.2}, {"params": [params[0], params[2]]}],
        weight_decay=0.0,
    )
    assert grouped.decay_flags == (True, False, False)
    assert [float(x) for x in grouped.get_weight_decay()] == pytest.approx([0.2, 0.0, 0.0])


def test_dynamic_weight_decay_uses_the_step_before_increment():
    w = torch.nn.Parameter(torch.ones(1))
    opt = nn.Momentum([("w", w)], 1.0, 0.0, weight_decay=nn.ExponentialDecayLR(0.5, 0.5, 1))
    values = []
    for _ in range(3):
        values.append(float(opt.get_weight_decay()))
        before = float(w.detach())
        opt((torch.zeros(1),))
        assert float(w.detach()) == pytest.approx(before * (1 - values[-1]))
    assert values == pytest.approx([0.5, 0.25, 0.125])


def test_order_params_sets_the_parameter_order():
    (a, pa), (b, pb), (c, pc) = _named((3, 2), (2,), (2,))
    opt = nn.Adam(
        [
            {"params": [(a, pa)], "lr": 0.01},
            {"params": [(b, pb), (c, pc)]},
            {"order_params": [pc, pa, pb]},
        ]
    )
    assert opt.parameters.names == ("bn.beta", "fc.weight", "bn.gamma")
    assert list(opt.parameters) == [pc, pa, pb]


def test_names_from_named_parameters_and_fallbacks():
    model = torch.nn.Linear(2, 1)
    assert nn.SGD(model.named_parameters()).parameters.names == ("weight", "bias")
    assert nn.SGD(list(model.parameters())).parameters.names == ("param0", "param1")


def test_properties_and_helpers():
    w = torch.nn.Parameter(torch.zeros(2))
    opt = nn.Adam([w])
    assert opt.target == "CPU" and opt.unique is True
    opt.target = "CPU"
    with pytest.raises(ValueError):
        opt.target = "GPU"
    with pytest.raises(TypeError):
        opt.unique = 1
    opt.unique = False
    with pytest.raises(NotImplementedError):
        nn.SGD([w]).target = "CPU"
    g = (torch.ones(2),)
    assert opt.flatten_gradients(g) == g
    assert opt.broadcast_params(True) is True
    with pytest.raises(ValueError, match="expected 1 gradients"):
        opt(())


# -- stepping ----------------------------------------------------------------------------------
def test_step_from_grad_equals_call_with_grads():
    a, b = _named((3, 2), (2,), seed=3), _named((3, 2), (2,), seed=3)
    oa = nn.Adam(a, learning_rate=0.01, weight_decay=0.1, loss_scale=2.0)
    ob = nn.Adam(b, learning_rate=0.01, weight_decay=0.1, loss_scale=2.0)
    for k in range(5):
        grads = _grads(oa.parameters, k)
        oa(grads)
        for p, g in zip(ob.parameters, grads):
            p.grad = g.clone()
        ob.step()
    for (_, x), (_, y) in zip(a, b):
        assert torch.equal(x, y)
    # parameters without a gradient are skipped by step()
    ob.parameters[1].grad = None
    before = ob.parameters[1].detach().clone()
    ob.step()
    assert torch.equal(ob.parameters[1].detach(), before) and ob.global_step == 6


def test_loss_scale_is_undone():
    a, b = _named((3, 2), (2,), seed=4), _named((3, 2), (2,), seed=4)
    oa = nn.Adam(a, learning_rate=0.01, weight_decay=0.1)
    ob = nn.Adam(b, learning_rate=0.01, weight_decay=0.1, loss_scale=8.0)
    for k in range(5):
        grads = _grads(oa.parameters, k)
        oa(grads)
        ob(tuple(g * 8 for g in grads))
    for (_, x), (_, y) in zip(a, b):
        assert torch.allclose(x, y, rtol=1e-6, atol=1e-7)


def test_torch_state_dict_round_trip_keeps_global_step():
    named = _named((3, 2), (2,))
    opt = nn.Adam(named, learning_rate=[0.1, 0.05, 0.02, 0.01])
    opt(_grads(opt.parameters, 0))
    sd = opt.state_dict()
    other = nn.Adam(_named((3, 2), (2,)), learning_rate=[0.1, 0.05, 0.02, 0.01])
    other.load_state_dict(sd)
    assert other.global_step == 1 and float(other.get_lr()) == pytest.approx(0.05)


class MyMomentum(nn.Optimizer):
    """MindSpore's documented user-optimizer example, ported."""

    def __init__(self, params, learning_rate, momentum=0.9):
        super().__init__(learning_rate, params)
        self.moments = self.parameters.clone(prefix="moments", init="zeros")
        self.momentum = momentum

    def construct(self, gradients):
        lr = self.get_lr()
        gradients = self.decay_weight(gradients)
        gradients = self.gradients_centralization(gradients)
        gradients = self.scale_grad(gradients)
        for p, m, g in zip(self.parameters, self.moments, gradients):
            m.mul_(self.momentum).add_(g)
            p.sub_(lr * m)
        return True


def test_user_optimizer_subclass(tmp_path):
    a, b = _named((3, 2), (2,), seed=5), _named((3, 2), (2,), seed=5)
    mine = MyMomentum(a, nn.WarmUpLR(0.1, 3))
    builtin = nn.Momentum(b, nn.WarmUpLR(0.1, 3), 0.9)
    for k in range(6):
        grads = _grads(mine.parameters, k)
        assert float(mine.get_lr()) == float(builtin.get_lr())
        assert mine(grads) is True
        builtin(grads)
    for (_, x), (_, y) in zip(a, b):
        assert torch.allclose(x, y, rtol=1e-6, atol=1e-7)
    assert mine.global_step == 6
    for p in mine.parameters:
        p.grad = torch.ones_like(p)
    mine.step()
    assert mine.global_step == 7
    # the clones are saved and restored under their names
    path = str(tmp_path / "mine.ckpt")
    nn.save_checkpoint(mine, path)
    loaded = nn.load_checkpoint(path)
    assert "moments.fc.weight" in loaded and loaded["global_step"].item() == 7
    fresh = MyMomentum(_named((3, 2), (2,), seed=9), nn.WarmUpLR(0.1, 3))
    assert nn.load_param_into_net(fresh, loaded) == ([], [])
    assert torch.equal(fresh.moments[0], mine.moments[0]) and fresh.global_step == 7


# -- gradient centralization (no MindSpore CPU kernel) -------------------------------------------
def test_gradient_centralization_documented_rule():
    named = _named((4, 16), (4, 8), (2,))
    named = [("conv.weight", named[0][1]), ("conv2.weight", named[1][1]), ("fc.bias", named[2][1])]
    ref = [p.detach().numpy().copy() for _, p in named]
    opt = nn.Momentum(
        [{"params": [named[0], named[1]], "grad_centralization": True}, {"params": [named[2]]}],
        0.1,
        0.9,
    )
    moments = [np.zeros_like(r) for r in ref]
    for k in range(12):
        grads = _grads(opt.parameters, k)
        opt(grads)
        for j, g in enumerate(grads):
            g = g.numpy()
            if j == 0:  # [4, 16]: centralized over axis 1; [4, 8] and the bias untouched
                g = g - g.mean(axis=1, keepdims=True)
            moments[j] = f32(0.9) * moments[j] + g
            ref[j] = ref[j] - f32(0.1) * moments[j]
    for (_, p), r in zip(named, ref):
        np.testing.assert_allclose(p.detach().numpy(), r, rtol=1e-5, atol=1e-6)
    # without groups there is no centralization at all
    plain = nn.SGD([named[0]])
    g = (torch.ones(4, 16) * torch.arange(16.0),)
    assert torch.equal(plain.gradients_centralization(g)[0], g[0])


# -- Lamb (no MindSpore CPU kernel): the documented rule ------------------------------------------
def _lamb_numpy(ps, grads_per_step, lr, wd, flags, beta1=0.9, beta2=0.999, eps=1e-6):
    ps = [p.copy() for p in ps]
    m = [np.zeros_like(p) for p in ps]
    v = [np.zeros_like(p) for p in ps]
    for t, grads in enumerate(grads_per_step, start=1):
        for j, g in enumerate(grads):
            m[j] = beta1 * m[j] + (1 - beta1) * g
            v[j] = beta2 * v[j] + (1 - beta2) * g * g
            r = (m[j] / (1 - beta1**t)) / (np.sqrt(v[j] / (1 - beta2**t)) + eps)
            if flags[j]:
                r = r + wd * ps[j]
            wn, rn = np.linalg.norm(ps[j]), np.linalg.norm(r)
            trust = wn / rn if wn > 0 and rn > 0 else 1.0
            ps[j] = ps[j] - lr * trust * r
    return ps


def test_lamb_documented_rule():
    named = _named((3, 2), (2,), (2,))
    with torch.no_grad():
        named[2][1].zero_()  # a zero parameter: trust ratio 1
    init = [p.detach().double().numpy() for _, p in named]
    opt = nn.Lamb(named, learning_rate=0.01, weight_decay=0.1)
    steps = [_grads(opt.parameters, k) for k in range(12)]
    for grads in steps:
        opt(grads)
    ref = _lamb_numpy(
        init, [[g.double().numpy() for g in gs] for gs in steps], 0.01, 0.1, [True, False, False]
    )
    for (_, p), r in zip(named, ref):
        np.testing.assert_allclose(p.detach().numpy(), r, rtol=1e-5, atol=1e-6)
    assert set(opt.parameters_dict()) >= {"lamb_m.fc.weight", "lamb_v.bn.beta", "global_step"}


# -- LARS (no MindSpore CPU kernel): the documented rule ------------------------------------------
@pytest.mark.parametrize("use_clip", [False, True])
def test_lars_documented_rule(use_clip):
    named = _named((3, 2), (2,), (2,), (2,))
    named[3] = ("fc.bias", named[3][1])
    init = [p.detach().double().numpy() for _, p in named]
    inner = nn.Momentum(named, 0.1, 0.9, weight_decay=0.01, loss_scale=2.0)
    opt = nn.LARS(inner, epsilon=1e-5, coefficient=0.02, use_clip=use_clip)
    assert opt.lars_flag == (True, True, True, False)
    lr, mu, wd, coeff = 0.1, 0.9, 0.01, 0.02
    decay = [True, False, False, True]  # the name filter of the wrapped optimizer
    ps, moments = [p.copy() for p in init], [np.zeros_like(p) for p in init]
    for k in range(12):
        grads = _grads(opt.parameters, k)
        opt(tuple(g * 2.0 for g in grads))  # the loss scale
        for j, g in enumerate(grads):
            g = g.double().numpy()
            if opt.lars_flag[j]:
                lam = wd if decay[j] else 0.0
                wn, gn = np.linalg.norm(ps[j]), np.linalg.norm(g)
                trust = coeff * wn / (gn + lam * wn + 1e-5)
                if use_clip:
                    trust = min(trust / lr, 1.0)
                g = trust * (g + lam * ps[j])
            moments[j] = mu * moments[j] + g
            ps[j] = ps[j] - lr * moments[j]
    for (_, p), r in zip(named, ps):
        np.testing.assert_allclose(p.detach().numpy(), r, rtol=1e-5, atol=1e-6)
    assert opt.global_step == 12 and inner.global_step == 12
    assert list(opt.parameters_dict())[:3] == ["global_step", "fake_lr", "fake_param"]


def test_lars_filter_sees_names():
    named = _named((3, 2), (2,))
    seen = []
    nn.LARS(nn.Momentum(named, 0.1, 0.9), lars_filter=lambda x: seen.append(x.name) or True)
    assert seen == ["fc.weight", "bn.gamma"]


# -- AdamOffload and use_offload ------------------------------------------------------------------
def test_offload_equals_adam_without_centralization():
    a, b, c = (_named((4, 16), (2,), seed=6) for _ in range(3))
    groups = lambda n: [{"params": [n[0]], "grad_centralization": True}, {"params": [n[1]]}]  # noqa: E731
    oa = nn.AdamOffload(groups(a), learning_rate=0.01)
    ob = nn.Adam(groups(b), learning_rate=0.01, use_offload=True)
    oc = nn.Adam(c, learning_rate=0.01)
    for k in range(5):
        grads = _grads(oa.parameters, k)
        for o in (oa, ob, oc):
            o(grads)
    for x, y, z in zip(a, b, c):
        assert torch.equal(x[1], y[1]) and torch.allclose(x[1], z[1], rtol=1e-6, atol=1e-7)
    assert oa.parameters_dict()["beta1_power"].shape == (1,)
    assert ob.parameters_dict()["beta1_power"].shape == ()
