"""Record what the real Paddle 3.3.1 or MindSpore 2.10.0 does with each bad input of
tools/bad_inputs.py: the exception (type and message, C++ hints and stacks cut off) at which
stage, or that it ran. Run with the framework's virtualenv:

    .venv-paddle/bin/python tools/bad_inputs_golden.py paddle
    .venv-mindspore/bin/python tools/bad_inputs_golden.py mindspore

It writes ``tests/golden/<framework>/bad_inputs.json``; tests/test_bad_inputs.py compares the
dialects with it (and, marked ``live``, re-runs the framework). It never imports torch or
polyoptim.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bad_inputs import (  # noqa: E402
    GRID_CLASSES,
    GRID_SCHEDULES,
    Namespace,
    all_cases,
    run,
    signature_of,
)

warnings.filterwarnings("ignore")


def _text(x) -> str:
    """Numbers as text, so that NaN compares equal to NaN."""
    return repr(np.asarray(x).tolist())


def paddle_namespace() -> Namespace:
    import paddle
    from paddle.utils import unique_name

    paddle.set_device("cpu")

    def param(name, values, dtype):
        arr = np.asarray(values, dtype=dtype)
        init = paddle.nn.initializer.Constant(0)
        with unique_name.guard():  # a fresh name space, so every case may call it "w"
            p = paddle.create_parameter(
                list(arr.shape), dtype, attr=paddle.ParamAttr(name=name), default_initializer=init
            )
        p.set_value(arr)
        return p

    def step(opt, params, grads):
        def closure():  # LBFGS re-evaluates; the others are stepped once
            for p, g in zip(params, grads):
                p._set_grad_ivar(paddle.to_tensor(np.asarray(g, dtype=p.numpy().dtype)))
            return paddle.to_tensor(1.0)

        if type(opt).__name__ == "LBFGS":
            opt.step(closure)
        else:
            closure()
            opt.step()

    def snapshot(opt, params):
        sd = opt.state_dict()
        flat = {k: (_text(v.numpy()) if hasattr(v, "numpy") else repr(v)) for k, v in sd.items()}
        return [_text(p.numpy()) for p in params], flat

    def load(opt, params, entries):
        sd = dict(opt.state_dict())
        for key, value in entries.items():
            if key == "LR_Scheduler":
                sd[key] = value
                continue
            name = next(k for k in sd if re.fullmatch(rf"w_{key}_\d+", k))
            if value is None:
                del sd[name]
            else:
                sd[name] = value
        opt.set_state_dict(sd)

    return Namespace(
        "paddle",
        paddle.optimizer,
        paddle.optimizer.lr,
        param,
        lambda v, dtype="float32": paddle.to_tensor(np.asarray(v, dtype=dtype)),
        step,
        snapshot,
        load,
    )


def mindspore_namespace() -> Namespace:
    import mindspore as ms
    from mindspore import Parameter, Tensor, nn

    ms.set_context(mode=ms.PYNATIVE_MODE)
    ms.set_device("CPU")

    def tensor(v, dtype="float32"):
        return Tensor(np.asarray(v, dtype=dtype))

    def step(opt, params, grads):
        opt(tuple(tensor(g, p.asnumpy().dtype.name) for p, g in zip(params, grads)))

    def snapshot(opt, params):
        return [_text(p.asnumpy()) for p in params], {
            p.name: _text(p.asnumpy()) for p in opt.parameters_and_names_dict().values()
        } if hasattr(opt, "parameters_and_names_dict") else {
            n: _text(p.asnumpy()) for n, p in opt.parameters_and_names()
        }

    def load(opt, params, entries):
        ms.load_param_into_net(opt, {k: Parameter(v, name=k) for k, v in entries.items()})

    lr = type("lr", (), {})()
    for n in dir(nn):
        setattr(lr, n, getattr(nn, n))
    return Namespace(
        "mindspore",
        nn,
        lr,
        lambda name, values, dtype: Parameter(tensor(values, dtype), name=name),
        tensor,
        step,
        snapshot,
        load,
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("framework", choices=["paddle", "mindspore"])
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    here = os.path.dirname(os.path.abspath(__file__))
    out = args.out or os.path.join(here, "..", "tests", "golden", args.framework, "bad_inputs.json")
    if args.framework == "paddle":
        import paddle

        ns, version = paddle_namespace(), paddle.__version__
    else:
        import mindspore

        ns, version = mindspore_namespace(), mindspore.__version__
    if args.framework == "mindspore":  # looks through MindSpore's (*args, **kwargs) decorators
        from mindspore_golden import signature_of as read_signature
    else:
        read_signature = signature_of
    signatures = {n: read_signature(getattr(ns.optim, n)) for n in GRID_CLASSES[args.framework]}
    for n in GRID_SCHEDULES[args.framework]:
        obj = getattr(ns.lr, n)
        signatures[n] = (read_signature if isinstance(obj, type) else signature_of)(obj)
    cases = all_cases(args.framework, signatures)
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    results = {}
    for case in cases:
        res = run(case, ns)
        if res["stage"] == "param":  # MindSpore may report a previous case's queued op failure
            res = run(case, ns)
        res.pop("changed", None)  # the framework's own atomicity is not what the dialect copies
        results[case.id] = res
        print(f"{case.id}: {res['stage']} {res['error'] or ''} {res.get('message', '')[:100]}")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(
            {
                "framework": args.framework,
                "version": version,
                "generated_by": "tools/bad_inputs_golden.py",
                "signatures": signatures,
                "cases": results,
            },
            f,
            indent=1,
            sort_keys=True,
        )
        f.write("\n")
    raised = sum(1 for r in results.values() if r["error"])
    print(f"{len(results)} cases: {raised} raised, {len(results) - raised} ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
