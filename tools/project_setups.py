"""Optimizer set-ups as real Paddle and MindSpore projects write them, run unchanged by the real
frameworks (tools/porting_golden_*.py) and by polyoptim on an adopted torch model
(tests/porting/): each function takes the framework's namespaces as arguments, so the only
difference between the two runs is what those names are bound to --

* Paddle: ``paddle`` is the real ``paddle`` or ``polyoptim.paddle``
  (``paddle.optimizer.AdamW``, ``paddle.optimizer.lr.LambdaDecay``, ``paddle.nn.ClipGradBy*``,
  ``paddle.regularizer.L2Decay`` exist in both);
* MindSpore: ``nn`` is ``mindspore.nn`` or ``polyoptim.mindspore``, ``amp`` is ``mindspore.amp``
  or ``polyoptim.mindspore.amp``.

The bodies restate the facts of the projects' builders (which parameters a filter picks, which
scheduler and clip, which arguments); they are not copies of the projects' code. The module
imports nothing of either framework.
"""

from __future__ import annotations

import math

import numpy as np

# ---------------------------------------------------------------------------------------------
# Paddle
# ---------------------------------------------------------------------------------------------


def paddlenlp_adamw(paddle, model, total_steps):
    """PaddleNLP fine-tuning: AdamW, linear warmup/decay as a LambdaDecay, global-norm clip,
    decay only for the parameters whose *structured* names hold neither "bias" nor "norm",
    passed by their unique ``p.name``."""
    warmup = 3

    def lr_lambda(current_step):
        if current_step < warmup:
            return float(current_step) / float(max(1, warmup))
        return max(0.0, float(total_steps - current_step) / float(max(1, total_steps - warmup)))

    lr_scheduler = paddle.optimizer.lr.LambdaDecay(5e-3, lr_lambda)
    decay_params = [
        p.name for n, p in model.named_parameters() if not any(nd in n for nd in ["bias", "norm"])
    ]
    optimizer = paddle.optimizer.AdamW(
        learning_rate=lr_scheduler,
        beta1=0.9,
        beta2=0.999,
        epsilon=1e-8,
        parameters=model.parameters(),
        weight_decay=0.01,
        apply_decay_param_fun=lambda x: x in decay_params,
        grad_clip=paddle.nn.ClipGradByGlobalNorm(1.0),
    )
    return optimizer, lr_scheduler


def paddleclas_adamw(paddle, model, total_steps):
    """PaddleClas (Swin/ViT configs) AdamW builder: ``no_weight_decay_name`` matched against
    structured names, ``one_dim_param_no_weight_decay``, the exclusion list kept as unique
    names for ``apply_decay_param_fun``; LinearWarmup around CosineAnnealingDecay; parameters
    gathered with ``sum([m.parameters() for m in model_list], [])``."""
    model_list = [model]
    no_weight_decay_name = "pos_embed norm"  # the config string
    no_weight_decay_name_list = no_weight_decay_name.split() if no_weight_decay_name else []
    no_weight_decay_param_name_list = [
        p.name
        for m in model_list
        for n, p in m.named_parameters()
        if any(nd in n for nd in no_weight_decay_name_list)
    ]
    no_weight_decay_param_name_list += [
        p.name for m in model_list for n, p in m.named_parameters() if len(p.shape) == 1
    ]
    parameters = sum([m.parameters() for m in model_list], [])
    cosine = paddle.optimizer.lr.CosineAnnealingDecay(learning_rate=2e-3, T_max=total_steps)
    lr_scheduler = paddle.optimizer.lr.LinearWarmup(
        learning_rate=cosine, warmup_steps=3, start_lr=2e-4, end_lr=2e-3
    )

    def apply_decay_param_fun(name):
        return name not in no_weight_decay_param_name_list

    optimizer = paddle.optimizer.AdamW(
        learning_rate=lr_scheduler,
        beta1=0.9,
        beta2=0.999,
        epsilon=1e-8,
        parameters=parameters,
        weight_decay=0.05,
        multi_precision=False,
        grad_clip=paddle.nn.ClipGradByGlobalNorm(5.0),
        apply_decay_param_fun=apply_decay_param_fun,
    )
    return optimizer, lr_scheduler


def paddleclas_momentum(paddle, model, total_steps):
    """PaddleClas Momentum builder (ResNet configs): L2Decay, decay/no-decay groups split on
    structured names (``no_weight_decay_name``), and the rebuild with ``use_multi_tensor=True``
    when the optimizer has ``_use_multi_tensor``; cosine decay."""
    model_list = [model]
    weight_decay = paddle.regularizer.L2Decay(1e-4)
    no_weight_decay_name = "norm bias"  # the config string
    no_weight_decay_name_list = no_weight_decay_name.split() if no_weight_decay_name else []
    params_with_decay, params_without_decay = [], []
    for m in model_list:
        params_with_decay += [
            p
            for n, p in m.named_parameters()
            if not any(nd in n for nd in no_weight_decay_name_list)
        ]
        params_without_decay += [
            p for n, p in m.named_parameters() if any(nd in n for nd in no_weight_decay_name_list)
        ]
    parameters = [
        {"params": params_with_decay, "weight_decay": weight_decay},
        {"params": params_without_decay, "weight_decay": 0.0},
    ]
    lr_scheduler = paddle.optimizer.lr.CosineAnnealingDecay(learning_rate=0.1, T_max=total_steps)
    opt = paddle.optimizer.Momentum(
        learning_rate=lr_scheduler,
        momentum=0.9,
        weight_decay=weight_decay,
        grad_clip=None,
        use_nesterov=False,
        parameters=parameters,
    )
    if hasattr(opt, "_use_multi_tensor"):
        opt = paddle.optimizer.Momentum(
            learning_rate=lr_scheduler,
            momentum=0.9,
            weight_decay=weight_decay,
            grad_clip=None,
            parameters=parameters,
            use_nesterov=False,
            use_multi_tensor=True,
        )
    return opt, lr_scheduler


def paddledet_rtdetr(paddle, model, total_steps):
    """PaddleDetection (RT-DETR config): the first backbone layer frozen with ``stop_gradient``,
    a ``param_groups`` entry scaling the backbone's learning rate by 0.1 built from
    ``named_parameters()`` filtered on ``param.trainable``, the remaining trainable parameters
    as a second group; AdamW, PiecewiseDecay inside LinearWarmup, global-norm clip 0.1."""
    for p in model.backbone[0].parameters():
        p.stop_gradient = True
    param_groups = [{"params": ["backbone"], "learning_rate": 0.1}]
    params, visited = [], []
    for group in param_groups:
        _params = {
            n: p
            for n, p in model.named_parameters()
            if any(k in n for k in group["params"]) and p.trainable is True
        }
        _group = group.copy()
        _group.update({"params": list(_params.values())})
        params.append(_group)
        visited.extend(list(_params.keys()))
    ext_params = [
        p for n, p in model.named_parameters() if n not in visited and p.trainable is True
    ]
    if len(ext_params) < len(model.parameters()):
        params.append({"params": ext_params})
    piecewise = paddle.optimizer.lr.PiecewiseDecay(
        boundaries=[total_steps // 2], values=[1e-3, 1e-4]
    )
    lr_scheduler = paddle.optimizer.lr.LinearWarmup(
        learning_rate=piecewise, warmup_steps=2, start_lr=1e-4, end_lr=1e-3
    )
    optimizer = paddle.optimizer.AdamW(
        learning_rate=lr_scheduler,
        parameters=params,
        grad_clip=paddle.nn.ClipGradByGlobalNorm(clip_norm=0.1),
        weight_decay=0.0001,
    )
    return optimizer, lr_scheduler


PADDLE_SETUPS = {
    "paddlenlp_adamw": paddlenlp_adamw,
    "paddleclas_adamw": paddleclas_adamw,
    "paddleclas_momentum": paddleclas_momentum,
    "paddledet_rtdetr": paddledet_rtdetr,
}


# ---------------------------------------------------------------------------------------------
# MindSpore
# ---------------------------------------------------------------------------------------------


def resnet_lr(lr_init, lr_end, lr_max, warmup_steps, total_steps):
    """The model zoo's ResNet per-step learning rates (linear warmup, then cosine), numpy."""
    out = []
    for i in range(total_steps):
        if i < warmup_steps:
            lr = lr_init + (lr_max - lr_init) * i / warmup_steps
        else:
            lr = (
                lr_end
                + (lr_max - lr_end)
                * (1.0 + math.cos(math.pi * (i - warmup_steps) / (total_steps - warmup_steps)))
                / 2.0
            )
        out.append(lr)
    return np.array(out, dtype=np.float32)


def init_group_params(net, weight_decay):
    """The model zoo ResNet's decay filter on MindSpore names (gamma/beta/bias not decayed)."""
    decayed_params = []
    no_decayed_params = []
    for param in net.trainable_params():
        if "beta" not in param.name and "gamma" not in param.name and "bias" not in param.name:
            decayed_params.append(param)
        else:
            no_decayed_params.append(param)
    return [
        {"params": decayed_params, "weight_decay": weight_decay},
        {"params": no_decayed_params},
        {"order_params": net.trainable_params()},
    ]


def mindspore_resnet(nn, amp, net, total_steps):
    """ResNet training set-up of the model zoo: grouped Momentum with ``order_params``, a
    per-step lr array, a fixed loss scale that is never dropped (so the optimizer divides it
    out), a TrainOneStepCell sending ``sens = loss_scale``. Returns ``(optimizer, sens)``."""
    loss_scale = 1024.0
    lr = resnet_lr(0.0, 0.0, 0.1, warmup_steps=3, total_steps=total_steps)
    group_params = init_group_params(net, 1e-4)
    opt = nn.Momentum(group_params, lr, 0.9, loss_scale=loss_scale)
    manager = amp.FixedLossScaleManager(loss_scale, drop_overflow_update=False)
    return opt, manager


def bert_lr_schedule(nn):
    """BERT's learning-rate schedule: warmup then polynomial decay, a LearningRateSchedule
    subclass (from ``nn.learning_rate_schedule``) as BERT writes it."""
    LearningRateSchedule = nn.learning_rate_schedule.LearningRateSchedule  # noqa: N806
    WarmUpLR = nn.learning_rate_schedule.WarmUpLR  # noqa: N806
    PolynomialDecayLR = nn.learning_rate_schedule.PolynomialDecayLR  # noqa: N806

    class BertLearningRate(LearningRateSchedule):
        def __init__(self, learning_rate, end_learning_rate, warmup_steps, decay_steps, power):
            super().__init__()
            self.warmup_lr = WarmUpLR(learning_rate, warmup_steps)
            self.decay_lr = PolynomialDecayLR(learning_rate, end_learning_rate, decay_steps, power)
            self.warmup_steps = warmup_steps

        def construct(self, global_step):
            decay_lr = self.decay_lr(global_step)
            is_warmup = float(int(global_step.reshape(-1)[0]) < self.warmup_steps)
            warmup_lr = self.warmup_lr(global_step)
            return (1.0 - is_warmup) * decay_lr + is_warmup * warmup_lr

    return BertLearningRate


def mindspore_bert(nn, amp, net, total_steps):
    """BERT fine-tuning set-up: AdamWeightDecay groups from a ``x.name.lower()`` filter
    (LayerNorm and bias not decayed), the warmup/polynomial schedule, dynamic loss scaling
    through DynamicLossScaleManager's update cell. Returns ``(optimizer, manager)``."""

    def decay_filter(x):
        return "layernorm" not in x.name.lower() and "bias" not in x.name.lower()

    params = net.trainable_params()
    decay_params = list(filter(decay_filter, params))
    other_params = list(filter(lambda x: not decay_filter(x), params))
    group_params = [
        {"params": decay_params, "weight_decay": 0.01},
        {"params": other_params, "weight_decay": 0.0},
    ]
    lr_schedule = bert_lr_schedule(nn)(2e-3, 1e-5, 3, total_steps, 1.0)
    optimizer = nn.AdamWeightDecay(group_params, learning_rate=lr_schedule, eps=1e-6)
    manager = amp.DynamicLossScaleManager(init_loss_scale=2.0**12, scale_factor=2, scale_window=4)
    return optimizer, manager


MINDSPORE_SETUPS = {
    "mindspore_resnet": mindspore_resnet,
    "mindspore_bert": mindspore_bert,
}
