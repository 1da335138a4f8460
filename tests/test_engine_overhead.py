"""The engine's per-step host path: what it remembers between steps, and that remembering never
changes a number.

A step over many small tensors is dominated by host work, so the fused path keeps, per stepped
tensor list, what its checks found (``cpu_fused._Layout``: identities, addresses, dtypes, sizes)
and the last step's scalars (a constant learning rate resolves to the same kernel and scalar
table). Each is validated against the tensors and scalars of the step; these tests change
everything that could make a remembered answer stale -- new gradients, ``p.data`` swaps, new
state buffers, hyperparameters edited (a signed zero too), tensor hyperparameters filled in
place, loaded checkpoints -- and compare with ``torch.optim``.

Also here: a ``load_state_dict`` that fails changes nothing.
"""

from __future__ import annotations

import copy

import pytest
import torch

import polyoptim
from polyoptim.kernels import cpu_fused, host_state

needs_numba = pytest.mark.skipif(not cpu_fused.available(), reason="needs Numba")


def _pair(n: int = 5, size: int = 33, seed: int = 0, **kw):
    """The same parameters for polyoptim's SGD (fused CPU default) and torch's for-loop SGD."""
    gen = torch.Generator().manual_seed(seed)
    init = [torch.randn(size, generator=gen) for _ in range(n)]
    ours = [torch.nn.Parameter(t.clone()) for t in init]
    theirs = [torch.nn.Parameter(t.clone()) for t in init]
    kw = {"lr": 0.1, "momentum": 0.9, **kw}
    return ours, theirs, polyoptim.SGD(ours, **kw), torch.optim.SGD(theirs, foreach=False, **kw)


def _grads(params, seed: int):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]


def _step_both(ours, theirs, opt, topt, seed: int, fresh_grads: bool = True) -> None:
    for ps in (ours, theirs):
        for p, g in zip(ps, _grads(ps, seed)):
            if fresh_grads or p.grad is None:
                p.grad = g
            else:
                p.grad.copy_(g)
    opt.step()
    topt.step()


def _assert_same(ours, theirs) -> None:
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@needs_numba
@pytest.mark.parametrize("fresh_grads", [True, False], ids=["new-grads", "same-grads"])
def test_repeated_steps_match_torch(fresh_grads):
    ours, theirs, opt, topt = _pair()
    for s in range(6):
        _step_both(ours, theirs, opt, topt, s, fresh_grads)
    _assert_same(ours, theirs)


@needs_numba
def test_unchanged_columns_skip_their_checks(monkeypatch):
    """The second step of the same parameters, gradients and buffers checks no column again;
    new gradients are checked (that column only)."""
    ours, theirs, opt, topt = _pair()
    _step_both(ours, theirs, opt, topt, 0, fresh_grads=False)
    _step_both(ours, theirs, opt, topt, 1, fresh_grads=False)
    checked: list[int] = []
    real = cpu_fused._column_code
    monkeypatch.setattr(
        cpu_fused, "_column_code", lambda col, j, *a: (checked.append(j), real(col, j, *a))[1]
    )
    _step_both(ours, theirs, opt, topt, 2, fresh_grads=False)
    assert checked == []
    _step_both(ours, theirs, opt, topt, 3, fresh_grads=True)
    assert checked == [1]
    _assert_same(ours, theirs)


@needs_numba
def test_param_data_swapped_between_steps():
    """``p.data = ...`` keeps the tensor object but not its memory, dtype or layout."""
    ours, theirs, opt, topt = _pair(n=3, size=12)
    _step_both(ours, theirs, opt, topt, 0)
    _step_both(ours, theirs, opt, topt, 1)
    for ps in (ours, theirs):
        ps[0].data = ps[0].data.clone()  # new memory, same everything else
    _step_both(ours, theirs, opt, topt, 2)
    _step_both(ours, theirs, opt, topt, 3)
    for ps, o in ((ours, opt), (theirs, topt)):
        ps[1].data = ps[1].data.view(3, 4).t()  # same memory, transposed: not contiguous
        buf = o.state[ps[1]]["momentum_buffer"]
        o.state[ps[1]]["momentum_buffer"] = buf.view(3, 4).t().contiguous()
    _step_both(ours, theirs, opt, topt, 4)
    _step_both(ours, theirs, opt, topt, 5)
    _assert_same(ours, theirs)


@needs_numba
def test_param_data_changes_dtype_between_steps():
    ours, theirs, opt, topt = _pair(n=3, size=12)
    _step_both(ours, theirs, opt, topt, 0)
    for ps, o in ((ours, opt), (theirs, topt)):
        for p in ps:
            p.data = p.data.double()
            o.state[p]["momentum_buffer"] = o.state[p]["momentum_buffer"].double()
            p.grad = None
    _step_both(ours, theirs, opt, topt, 1)
    _step_both(ours, theirs, opt, topt, 2)
    assert ours[0].dtype == torch.float64
    _assert_same(ours, theirs)


@needs_numba
def test_state_buffer_replaced_between_steps():
    ours, theirs, opt, topt = _pair()
    _step_both(ours, theirs, opt, topt, 0)
    _step_both(ours, theirs, opt, topt, 1)
    for ps, o in ((ours, opt), (theirs, topt)):
        o.state[ps[2]]["momentum_buffer"] = torch.full_like(ps[2], 0.5)
        del o.state[ps[3]]  # starts over: its next step is a first step
    _step_both(ours, theirs, opt, topt, 2)
    _step_both(ours, theirs, opt, topt, 3)
    _assert_same(ours, theirs)


def _host_state_pair(cls: str, n: int = 4):
    gen = torch.Generator().manual_seed(3)
    init = [torch.randn(33, generator=gen) for _ in range(n)]
    ours = [torch.nn.Parameter(t.clone()) for t in init]
    theirs = [torch.nn.Parameter(t.clone()) for t in init]
    kw = {"lr": 0.01, **({"t0": 2} if cls == "ASGD" else {})}
    topt = getattr(torch.optim, cls)(theirs, foreach=False, **kw)
    return ours, theirs, getattr(polyoptim, cls)(ours, **kw), topt


@needs_numba
def test_host_state_written_last_step_is_not_read_again(monkeypatch):
    """Every tensor's ``step`` is the one the last step wrote: the next step reads none."""
    ours, theirs, opt, topt = _host_state_pair("Adam")
    for s in range(2):
        _step_both(ours, theirs, opt, topt, s)
    reads: list[str] = []
    real = host_state._host_values
    monkeypatch.setattr(host_state, "_host_values", lambda st, k: (reads.append(k), real(st, k))[1])
    _step_both(ours, theirs, opt, topt, 2)
    assert reads == []
    _assert_same(ours, theirs)


@needs_numba
@pytest.mark.parametrize("how", ["in-place", "replaced"])
@pytest.mark.parametrize("which", [0, 2], ids=["first", "other"])
@pytest.mark.parametrize("cls, key", [("Adam", "step"), ("ASGD", "eta"), ("ASGD", "mu")])
def test_host_state_changed_between_steps(cls, key, which, how):
    """A host-state tensor edited in place (its version counter moves) or replaced (even by one
    whose counter reads the same) since the last step is read again: that parameter's step
    then differs from the others'."""
    ours, theirs, opt, topt = _host_state_pair(cls)
    for s in range(3):
        _step_both(ours, theirs, opt, topt, s)
    for ps, o in ((ours, opt), (theirs, topt)):
        st = o.state[ps[which]]
        if how == "in-place":
            st[key].mul_(0.5)
        else:  # a new tensor, its version counter brought level with the old one's
            new = st[key] * 0.5
            while new._version < st[key]._version:
                new.add_(0)
            st[key] = new
    for s in range(3, 6):
        _step_both(ours, theirs, opt, topt, s)
    _assert_same(ours, theirs)


@needs_numba
@pytest.mark.parametrize("cls", ["Adam", "ASGD", "NAdam"])
def test_first_step_packs_new_host_state(cls):
    """A fused first step makes each host-state key's tensors rows of one tensor (written with
    one copy, recognised by one version counter); the numbers stay torch's."""
    ours, theirs, opt, topt = _host_state_pair(cls)
    _step_both(ours, theirs, opt, topt, 0)
    for key in opt.rule.host_state:
        values = [opt.state[p][key] for p in ours]
        base = values[0]._base
        assert base is not None and all(v._base is base for v in values), key
        assert [v.data_ptr() for v in values] == [base[i].data_ptr() for i in range(len(ours))]
    for s in range(1, 4):
        _step_both(ours, theirs, opt, topt, s)
    _assert_same(ours, theirs)
    for p, q in zip(ours, theirs):
        for key, v in topt.state[q].items():
            torch.testing.assert_close(opt.state[p][key], v, rtol=1e-6, atol=1e-7)


@needs_numba
def test_packed_host_state_checkpoint_loads_into_torch():
    """A state_dict whose ``step`` tensors are packed rows saves, loads into ``torch.optim`` and
    back, and training goes on with the same numbers."""
    import io

    ours, theirs, opt, topt = _host_state_pair("Adam")
    for s in range(3):
        _step_both(ours, theirs, opt, topt, s)
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    loaded = torch.load(buf)
    twin = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    tload = torch.optim.Adam(twin, lr=0.01, foreach=False)
    tload.load_state_dict(loaded)
    opt.load_state_dict(copy.deepcopy(topt.state_dict()))
    for s in range(3, 6):
        _step_both(ours, theirs, opt, topt, s)
        for p, g in zip(twin, _grads(twin, s)):
            p.grad = g
        tload.step()
    _assert_same(ours, theirs)
    _assert_same(twin, theirs)


@needs_numba
def test_loaded_host_state_tensors_stay_themselves():
    """Host-state tensors that came from a checkpoint are never packed: like torch, the
    optimizer keeps stepping the very tensors it was given, in place."""
    ours, theirs, opt, topt = _host_state_pair("Adam")
    for s in range(2):
        _step_both(ours, theirs, opt, topt, s)
    sd = copy.deepcopy(opt.state_dict())
    given = [sd["state"][i]["step"] for i in range(len(ours))]
    opt.load_state_dict(sd)
    for s in range(2, 5):
        _step_both(ours, theirs, opt, topt, s)
    assert all(opt.state[p]["step"] is t for p, t in zip(ours, given))
    assert [float(t) for t in given] == [5.0] * len(ours)
    assert opt.param_groups[0]["foreach"] is None  # the fused CPU default stepped them
    _assert_same(ours, theirs)


def test_packed_host_state_stepped_in_part_leaves_the_rest():
    """A cache that packed three states' ``step`` and then sees only the first two must not
    write the third (its row of the shared tensor)."""
    from polyoptim.rules.adam import adam

    hp = {"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}
    hp |= {"amsgrad": False, "maximize": False}
    states = [{"step": torch.tensor(0.0)} for _ in range(3)]
    cache: dict = {}
    host_state.prepare_all(adam, hp, states, [True] * 3, cache)
    assert states[2]["step"]._base is states[0]["step"]._base
    host_state.prepare_all(adam, hp, states[:2], [False] * 2, cache)
    assert [float(st["step"]) for st in states] == [2.0, 2.0, 1.0]


@needs_numba
def test_hyperparameters_edited_between_steps():
    """A new momentum, lr or nesterov flag picks a new kernel or scalar table."""
    ours, theirs, opt, topt = _pair()
    _step_both(ours, theirs, opt, topt, 0)
    _step_both(ours, theirs, opt, topt, 1)
    for edit in ({"lr": 0.05}, {"momentum": 0.5}, {"nesterov": True}, {"dampening": 0.0}):
        for o in (opt, topt):
            o.param_groups[0].update(edit)
        _step_both(ours, theirs, opt, topt, 2)
        _step_both(ours, theirs, opt, topt, 3)
    _assert_same(ours, theirs)


@needs_numba
def test_tensor_hyperparameters_filled_in_place_between_steps():
    """A tensor learning rate or weight decay changed in place compares equal to itself: the
    scalars of the last step must not be reused for it."""
    ours, theirs, opt, topt = _pair(lr=torch.tensor(0.1), weight_decay=torch.tensor(0.1))
    for s in range(8):
        key, value = ("lr", 0.1 / (s + 1)) if s < 4 else ("weight_decay", 0.1 * s)
        for o in (opt, topt):
            o.param_groups[0][key].fill_(value)
        _step_both(ours, theirs, opt, topt, s)
    _assert_same(ours, theirs)


@needs_numba
def test_lr_scheduler_and_checkpoint_round_trip():
    ours, theirs, opt, topt = _pair(n=4)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5)
    tsched = torch.optim.lr_scheduler.StepLR(topt, 1, gamma=0.5)
    for s in range(3):
        _step_both(ours, theirs, opt, topt, s)
        sched.step()
        tsched.step()
    opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # new state tensors, same values
    for s in range(3, 6):
        _step_both(ours, theirs, opt, topt, s)
        sched.step()
        tsched.step()
    _assert_same(ours, theirs)


@needs_numba
def test_gradients_for_some_parameters_only():
    """The stepped list changes from step to step (its own cache entry each time)."""
    ours, theirs, opt, topt = _pair(n=6)
    for s in range(6):
        _step_both(ours, theirs, opt, topt, s)
        for ps in (ours, theirs):
            ps[s % 6].grad = None  # this one sits out the next step
            ps[(s + 3) % 6].grad = None
    _assert_same(ours, theirs)


def test_step_cache_is_not_saved():
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3)
    opt = polyoptim.Adam([p])
    opt.step()
    assert "_step_caches" not in opt.__getstate__()
    clone = copy.deepcopy(opt)
    clone.param_groups[0]["params"][0].grad = torch.ones(3)
    clone.step()  # an unpickled optimizer makes its own cache


# -- a failed load_state_dict ---------------------------------------------------------------------
def _snapshot(opt: torch.optim.Optimizer):
    return opt.state, opt.param_groups, copy.deepcopy(opt.state_dict())


def _assert_unchanged(opt: torch.optim.Optimizer, snap) -> None:
    state, groups, sd = snap
    assert opt.state is state and opt.param_groups is groups
    now = opt.state_dict()
    assert now["param_groups"] == sd["param_groups"]
    assert now["state"].keys() == sd["state"].keys()
    for k, st in sd["state"].items():
        assert now["state"][k].keys() == st.keys()
        for name, v in st.items():
            assert torch.equal(now["state"][k][name], v), name


@pytest.mark.parametrize("cls", [polyoptim.Adam, polyoptim.SGD])
def test_failed_load_state_dict_changes_nothing(cls):
    w = torch.nn.Parameter(torch.ones(4))
    w.grad = torch.full((4,), 0.5)
    opt = cls([w], lr=0.1, **({"momentum": 0.9} if cls is polyoptim.SGD else {}))
    opt.step()
    other = cls([torch.nn.Parameter(torch.zeros(4))], lr=0.3)
    other.param_groups[0]["params"][0].grad = torch.ones(4)
    other.step()
    good = other.state_dict()

    # a post-hook that fails: torch's loader has swapped the new state in by then
    snap = _snapshot(opt)
    handle = opt.register_load_state_dict_post_hook(lambda o: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        opt.load_state_dict(good)
    handle.remove()
    _assert_unchanged(opt, snap)

    # a state dict of the wrong shape: refused before anything is touched
    bad = copy.deepcopy(good)
    bad["param_groups"][0]["params"].append(99)
    with pytest.raises(ValueError, match="doesn't match the size"):
        opt.load_state_dict(bad)
    _assert_unchanged(opt, snap)

    # the optimizer goes on exactly as if no load had been tried
    twin = cls(
        [torch.nn.Parameter(torch.ones(4))],
        lr=0.1,
        **({"momentum": 0.9} if cls is polyoptim.SGD else {}),
    )
    twin.param_groups[0]["params"][0].grad = torch.full((4,), 0.5)
    twin.step()
    for o in (opt, twin):
        o.param_groups[0]["params"][0].grad = torch.full((4,), 0.25)
        o.step()
    assert torch.equal(w, twin.param_groups[0]["params"][0])


def test_failed_load_in_setstate_changes_nothing():
    """An old-style ``step`` that cannot be read fails in ``__setstate__``, after torch's
    loader assigned the new state."""
    w = torch.nn.Parameter(torch.ones(4))
    w.grad = torch.ones(4)
    opt = polyoptim.Adam([w], lr=0.1)
    opt.step()
    snap = _snapshot(opt)
    bad = copy.deepcopy(opt.state_dict())
    bad["state"][0]["step"] = [1.0, 2.0]  # not a number
    with pytest.raises(TypeError):
        opt.load_state_dict(bad)
    _assert_unchanged(opt, snap)


@needs_numba
def test_signed_zero_hyperparameter_is_not_the_last_steps():
    """0.0 == -0.0, yet ``p + (-lr) g`` keeps or drops the sign of a zero parameter."""
    results = []
    for cls, kw in ((polyoptim.SGD, {}), (torch.optim.SGD, {"foreach": False})):
        p = torch.nn.Parameter(torch.full((8,), -0.0))
        opt = cls([p], lr=0.0, **kw)
        signs = []
        for lr in (0.0, 0.0, -0.0, -0.0, 0.0):
            opt.param_groups[0]["lr"] = lr
            p.data.fill_(-0.0)
            p.grad = torch.ones(8)
            opt.step()
            signs.append(torch.signbit(p).tolist())
        results.append(signs)
    assert results[0] == results[1]
