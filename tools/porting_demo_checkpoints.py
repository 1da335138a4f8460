"""Write the checkpoint files ``polyoptim demo`` resumes from, with the real Paddle or MindSpore.

    PYTHONPATH=src .venv/bin/python -c \
        "from polyoptim.demo_dialects import export_training_data as e; e('/tmp/demo_data.npz')"
    .venv-paddle/bin/python tools/porting_demo_checkpoints.py paddle /tmp/demo_data.npz
    .venv-mindspore/bin/python tools/porting_demo_checkpoints.py mindspore /tmp/demo_data.npz

The first command exports the demo's data, initial weights and minibatch orders (so both
frameworks train exactly as the demo does); the others build the demo network in the framework,
run the set-up of src/polyoptim/demo_setups.py with the framework's own namespaces for
``RESUME_EPOCH`` epochs, and save into src/polyoptim/data/: ``demo_paddle.pdparams`` and
``demo_paddle.pdopt`` (``paddle.save`` of the model's and optimizer's state dicts), or
``demo_mindspore.ckpt`` (``save_checkpoint`` of the training cell). Never imports torch.

Two things differ from a GPU run, both forced by the CPU: Paddle's GradScaler turns itself off
on a CPU (its scaling by a power of two and unscaling are exact, so the numbers do not change),
and MindSpore has no CPU kernel for its overflow check, so the script stands in the same test
(any inf or nan in the gradients).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
OUT = os.path.join(ROOT, "src", "polyoptim", "data")


def _setups():
    """src/polyoptim/demo_setups.py, loaded by path (importing polyoptim would need torch)."""
    path = os.path.join(ROOT, "src", "polyoptim", "demo_setups.py")
    spec = importlib.util.spec_from_file_location("demo_setups", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def batches(data, epochs):
    x, y, bs = data["x_train"], data["y_train"], int(data["batch_size"])
    for epoch in range(epochs):
        order = data[f"order{epoch}"]
        for i in range(0, len(order), bs):
            idx = order[i : i + bs]
            yield x[idx], y[idx]


def paddle_main(data, setups):
    import paddle
    from paddle import nn
    from paddle.utils import unique_name

    paddle.set_device("cpu")

    class DemoNet(nn.Layer):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(64, 128)
            self.norm = nn.BatchNorm1D(128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            return self.fc2(nn.functional.relu(self.norm(self.fc1(x))))

    with unique_name.guard():
        net = DemoNet()
        init = {k[5:]: v for k, v in data.items() if k.startswith("init/")}
        rename = {"_mean": "running_mean", "_variance": "running_var"}
        for key, p in net.state_dict().items():
            head, leaf = key.rsplit(".", 1)
            value = init[f"{head}.{rename.get(leaf, leaf)}"]
            p.set_value(value.T if value.ndim == 2 else value)  # Paddle's Linear is [in, out]
        spe = -(-len(data["x_train"]) // int(data["batch_size"]))
        epochs, stop = int(data["epochs"]), int(data["resume_epoch"])
        optimizer, lr_scheduler, scaler = setups.paddle_setup(paddle, net, spe, epochs)
        loss_fn = nn.CrossEntropyLoss()
        for x, y in batches(data, stop):
            loss = loss_fn(net(paddle.to_tensor(x)), paddle.to_tensor(y))
            scaled = scaler.scale(loss)
            scaled.backward()
            scaler.minimize(optimizer, scaled)
            optimizer.clear_grad()
            lr_scheduler.step()
        paddle.save(net.state_dict(), os.path.join(OUT, "demo_paddle.pdparams"))
        paddle.save(optimizer.state_dict(), os.path.join(OUT, "demo_paddle.pdopt"))
    print("paddle: saved after", stop, "epochs; last loss", float(loss))


def mindspore_main(data, setups):
    import mindspore as ms
    from mindspore import Tensor, amp, nn, ops

    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")

    class DemoNet(nn.Cell):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Dense(64, 128)
            self.norm = nn.BatchNorm1d(128)
            self.fc2 = nn.Dense(128, 10)

        def construct(self, x):
            return self.fc2(ops.relu(self.norm(self.fc1(x))))

    net = DemoNet()
    init = {k[5:]: v for k, v in data.items() if k.startswith("init/")}
    rename = {
        "gamma": "weight",
        "beta": "bias",
        "moving_mean": "running_mean",
        "moving_variance": "running_var",
    }
    for name, p in net.parameters_and_names():
        head, leaf = name.rsplit(".", 1)
        p.set_data(Tensor(init[f"{head}.{rename.get(leaf, leaf)}"]))
    spe = -(-len(data["x_train"]) // int(data["batch_size"]))
    epochs, stop = int(data["epochs"]), int(data["resume_epoch"])
    opt, update_cell = setups.mindspore_setup(nn, amp, net, spe, epochs)
    loss_net = nn.WithLossCell(net, nn.CrossEntropyLoss())
    train_net = nn.TrainOneStepWithLossScaleCell(loss_net, opt, scale_sense=update_cell)

    def overflow_status(status, grads):  # MindSpore has no CPU kernel for its own check
        return Tensor(any(not bool(ops.isfinite(g).all().asnumpy()) for g in grads))

    train_net.get_overflow_status = overflow_status
    train_net.set_train()
    for x, y in batches(data, stop):
        loss, _, _ = train_net(Tensor(x), Tensor(y.astype(np.int32)))
    ms.save_checkpoint(train_net, os.path.join(OUT, "demo_mindspore.ckpt"))
    print("mindspore: saved after", stop, "epochs; last loss", float(loss.asnumpy()))


def main():
    framework, path = sys.argv[1], sys.argv[2]
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    os.makedirs(OUT, exist_ok=True)
    {"paddle": paddle_main, "mindspore": mindspore_main}[framework](data, _setups())


if __name__ == "__main__":
    main()
