"""Row-sparse gradients (MindSpore's ``RowTensor``; torch's sparse COO) for Adam, LazyAdam and
FTRL, against MindSpore's fused CPU kernels (``opt.target = 'CPU'``), which merge repeated rows.

MindSpore's default-target paths treat repeated rows differently (docs/mindspore.md); those
fixtures are documented, not compared.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from golden_format import grads, n_steps, trajectory
from ms_golden_cases import all_cases, build, load, relerr

from polyoptim import mindspore as nn

TOL = 1e-5
SPARSE = [c for c in all_cases("optimizer") if load(c)["meta"]["sparse_grads"]]
FUSED = [c for c in SPARSE if load(c)["meta"]["target"] == "CPU"]


def sparse_grads(case, opt, names, k):
    a = case["arrays"]
    dense = dict(zip(names, grads(case, k)))
    out = []
    for n in opt.parameters.names:
        j = names.index(n)
        if f"gindices{k}_{j}" in a:
            idx = torch.tensor(a[f"gindices{k}_{j}"], dtype=torch.int64)
            values = torch.tensor(a[f"gvalues{k}_{j}"])
            out.append(
                torch.sparse_coo_tensor(idx[None], values, dense[n].shape, check_invariants=True)
            )
        else:
            out.append(torch.tensor(dense[n]))
    return tuple(out)


@pytest.mark.parametrize("name", FUSED)
def test_sparse_matches_fused_cpu_kernels(name, record_property):
    case = load(name)
    opt, ps, names = build(case)
    opt.target = "CPU"
    worst = 0.0
    for k in range(1, n_steps(case) + 1):
        opt(sparse_grads(case, opt, names, k))
        for j, (p, ref) in enumerate(zip(ps, trajectory(case, k))):
            if case["meta"]["optimizer"] == "FTRL" and j == 1:
                continue  # the dense bias goes through ApplyFtrl's l1 sign quirk (test_golden)
            worst = max(worst, relerr(p, ref))
    record_property("mindspore_relerr", worst)
    assert worst <= TOL


def test_lazy_updates_only_the_rows_given():
    emb = torch.nn.Embedding(6, 2, sparse=True)
    before = emb.weight.detach().clone()
    opt = nn.LazyAdam(emb.named_parameters(), learning_rate=0.1)
    emb(torch.tensor([1, 3, 3])).sum().backward()
    opt.step()
    changed = (emb.weight.detach() != before).any(dim=1)
    assert changed.tolist() == [False, True, False, True, False, False]
    m = opt.state[emb.weight]["exp_avg"]
    assert torch.count_nonzero(m[[0, 2, 4, 5]]) == 0


def test_non_lazy_sparse_equals_dense_summed_gradient():
    torch.manual_seed(0)
    w1 = torch.nn.Parameter(torch.randn(5, 3))
    w2 = torch.nn.Parameter(w1.detach().clone())
    a = nn.Adam([("emb", w1)], learning_rate=0.1, weight_decay=0.0)
    b = nn.Adam([("emb", w2)], learning_rate=0.1)
    for step in range(4):
        idx = torch.tensor([[step % 5, 2, 2]])
        vals = torch.randn(3, 3)
        g = torch.sparse_coo_tensor(idx, vals, (5, 3), check_invariants=True)
        a((g,))
        b((g.to_dense(),))
    assert torch.allclose(w1, w2, rtol=1e-6, atol=1e-7)


def test_sparse_weight_decay_is_per_entry():
    """A RowTensor's entries are decayed one by one (a repeated row twice), then merged."""
    w = torch.nn.Parameter(torch.ones(3, 2))
    opt = nn.LazyAdam([("emb.w", w)], learning_rate=0.1, weight_decay=0.5)
    g = torch.sparse_coo_tensor([[1, 1]], torch.zeros(2, 2), (3, 2), check_invariants=True)
    opt((g,))
    # row 1 saw 2 * 0.5 * w = 1.0 as its gradient, rows 0 and 2 nothing
    m = opt.state[w]["exp_avg"]
    assert m[1].tolist() == pytest.approx([0.1, 0.1]) and m[[0, 2]].abs().sum() == 0


def test_sparse_refused_where_mindspore_refuses():
    g = torch.sparse_coo_tensor([[0]], torch.ones(1, 2), (3, 2), check_invariants=True)
    for make in (
        lambda w: nn.Momentum([w], 0.1, 0.9),
        lambda w: nn.AdamOffload([w]),
        lambda w: nn.RMSProp([w]),
    ):
        w = torch.nn.Parameter(torch.zeros(3, 2))
        with pytest.raises(RuntimeError, match="does not support sparse gradients"):
            make(w)((g,))
        assert torch.count_nonzero(w) == 0


def test_embedding_step_from_grad():
    emb = torch.nn.Embedding(4, 2, sparse=True)
    opt = nn.FTRL(emb.named_parameters(), learning_rate=0.1)
    emb(torch.tensor([2])).sum().backward()
    opt.step()
    assert opt.global_step == 1
    assert np.count_nonzero(opt.state[emb.weight]["linear"].numpy()) == 2
