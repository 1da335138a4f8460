"""The training set-ups of ``polyoptim demo``'s dialect section, as a Paddle user and a MindSpore
user write them.

Each function takes the framework's namespaces as arguments: the demo passes polyoptim's
(``polyoptim.paddle``; ``polyoptim.mindspore`` and its ``amp``), and the scripts that write the
demo's checkpoint files (tools/porting_demo_checkpoints_*.py) pass the real Paddle and MindSpore,
so both run the same lines. This module imports nothing (no torch, no framework).

The network (``fc1 -> norm -> ReLU -> fc2``, ``norm`` a BatchNorm) is built by the caller in its
framework; ``model`` must present that framework's parameter surface (a torch module adopted with
``polyoptim.paddle.adopt`` / ``polyoptim.mindspore.adopt``, or a real Paddle/MindSpore network).
"""

from __future__ import annotations

import math

#: epochs trained by the real frameworks before they write the checkpoint the demo resumes from
RESUME_EPOCH = 5


def paddle_setup(paddle, model, steps_per_epoch, epochs):
    """PaddleNLP-style: AdamW, linear warmup (one epoch) then linear decay as a LambdaDecay,
    decay only for parameters whose names hold neither "bias" nor "norm" (kept as unique
    ``p.name`` for ``apply_decay_param_fun``), global-norm clipping, a GradScaler.

    Returns:
        ``(optimizer, lr_scheduler, scaler)``; per step: ``scaled = scaler.scale(loss);
        scaled.backward(); scaler.minimize(optimizer, scaled); optimizer.clear_grad();
        lr_scheduler.step()``.
    """
    total = steps_per_epoch * epochs
    warmup = steps_per_epoch

    def lr_lambda(current_step):
        if current_step < warmup:
            return float(current_step + 1) / float(warmup)
        return max(0.0, float(total - current_step) / float(max(1, total - warmup)))

    lr_scheduler = paddle.optimizer.lr.LambdaDecay(learning_rate=3e-3, lr_lambda=lr_lambda)
    decay_params = [
        p.name for n, p in model.named_parameters() if not any(nd in n for nd in ["bias", "norm"])
    ]
    optimizer = paddle.optimizer.AdamW(
        learning_rate=lr_scheduler,
        parameters=model.parameters(),
        weight_decay=0.01,
        apply_decay_param_fun=lambda x: x in decay_params,
        grad_clip=paddle.nn.ClipGradByGlobalNorm(clip_norm=1.0),
    )
    scaler = paddle.amp.GradScaler(init_loss_scaling=2.0**10)
    return optimizer, lr_scheduler, scaler


def mindspore_lr(steps_per_epoch, epochs, lr_max=0.1):
    """The model zoo's per-step learning rates: linear warmup (one epoch), cosine decay."""
    total = steps_per_epoch * epochs
    warmup = steps_per_epoch
    out = []
    for i in range(total):
        if i < warmup:
            out.append(lr_max * (i + 1) / warmup)
        else:
            out.append(lr_max * 0.5 * (1 + math.cos(math.pi * (i - warmup) / (total - warmup))))
    return out


def mindspore_setup(nn, amp, net, steps_per_epoch, epochs):
    """Model-zoo ResNet-style: decayed and not-decayed groups by MindSpore names (``gamma``,
    ``beta``, ``bias`` not decayed) with ``order_params``, Momentum on a per-step learning-rate
    list, dynamic loss scaling through DynamicLossScaleManager's update cell.

    Returns:
        ``(optimizer, update_cell)`` for ``nn.TrainOneStepWithLossScaleCell(
        nn.WithLossCell(net, loss_fn), optimizer, scale_sense=update_cell)``.
    """
    decayed, no_decayed = [], []
    for param in net.trainable_params():
        if "beta" not in param.name and "gamma" not in param.name and "bias" not in param.name:
            decayed.append(param)
        else:
            no_decayed.append(param)
    group_params = [
        {"params": decayed, "weight_decay": 1e-4},
        {"params": no_decayed},
        {"order_params": net.trainable_params()},
    ]
    lr = mindspore_lr(steps_per_epoch, epochs)
    opt = nn.Momentum(group_params, learning_rate=lr, momentum=0.9)
    manager = amp.DynamicLossScaleManager(init_loss_scale=2.0**10, scale_factor=2, scale_window=50)
    return opt, manager.get_update_cell()
