"""Fine-tuning library on a tiny synthetic set (CPU, 16-32 px): registries, freezing, checkpoints, resume."""

import numpy as np
import pytest
import torch

from fmnist.data import synthetic_dataset, train_val_split
from fmnist.errors import CacheError, ChoiceError, ParamError
from fmnist.finetune import (MODES, OPTIMIZERS, SCHEDULES, FitConfig, SplitData, augment_batch, evaluate,
                             export_model, fit, load_checkpoint, predict, train_one_epoch)
from fmnist.finetune.checkpoint import BEST_FILE, CHECKPOINT_FILE, checkpoint_epoch
from fmnist.finetune.optim import _warmup_steps, build_optimizer, build_schedule, param_groups
from fmnist.finetune.train import check_checkpoint
from fmnist.weights import build_resnet18, imagenet_preprocess, resolve_weights

FAST = dict(image_size=16, batch_size=32, lr=0.05, augment=True)


@pytest.fixture(scope="module")
def split():
    ds = synthetic_dataset(n_train=100, n_test=40)
    tr, va = train_val_split(ds.y_train, 0.25, 0)
    return SplitData(ds.x_train[tr], ds.y_train[tr], ds.x_train[va], ds.y_train[va], ds.x_test, ds.y_test)


def model():
    return build_resnet18(resolve_weights("none"), num_classes=10)


def state(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def test_one_epoch_runs_on_cpu(split):
    res = fit(model(), split, FitConfig(epochs=1, test_curve=True, **FAST), device="cpu", progress=False)
    (rec,) = res.history
    assert set(rec) == {"train_loss", "train_accuracy", "val_accuracy", "test_accuracy_curve", "epoch_seconds",
                        "images_per_second"}
    assert np.isfinite(rec["train_loss"]) and 0 <= rec["val_accuracy"] <= 1 and rec["images_per_second"] > 0
    assert res.best_epoch == 1 and res.best_val_accuracy == rec["val_accuracy"] and res.start_epoch == 1
    pred = predict(res.model, split.x_val, image_size=16, device="cpu")
    assert pred.dtype == np.int64 and np.mean(pred == split.y_val) == pytest.approx(rec["val_accuracy"])


def test_train_one_epoch_learns_and_evaluate_is_predict_accuracy():
    ds = synthetic_dataset(n_train=40, n_test=20)
    torch.manual_seed(0)
    m = model()
    opt = build_optimizer("sgd", m.parameters(), lr=0.01, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    stats = [train_one_epoch(m, opt, sched, ds.x_train, ds.y_train, generator=torch.Generator().manual_seed(e),
                             image_size=32, batch_size=16, device="cpu") for e in (1, 2)]
    assert [s.images for s in stats] == [32, 32] and sched.last_epoch == 4  # 2 full batches/epoch, last 8 dropped
    assert all(np.isfinite(s.train_loss) and s.seconds > 0 for s in stats)
    assert stats[1].train_loss < 0.75 * stats[0].train_loss, stats  # same 40 images twice: it must fit them
    acc = evaluate(m, ds.x_test, ds.y_test, image_size=32, device="cpu", batch_size=8)  # 8 does not divide 20
    assert acc == np.mean(predict(m, ds.x_test, image_size=32, device="cpu") == ds.y_test) and 0 <= acc <= 1


def test_num_workers_change_speed_not_results(split):
    cfg = FitConfig(epochs=1, **FAST)
    a = fit(model(), split, cfg, device="cpu", progress=False, num_workers=0)
    b = fit(model(), split, cfg, device="cpu", progress=False, num_workers=1)
    assert a.history[0]["train_loss"] == b.history[0]["train_loss"]
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))


def test_full_mode_learns_the_synthetic_classes(split):
    res = fit(model(), split, FitConfig(epochs=3, **{**FAST, "augment": False}), device="cpu", progress=False)
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < losses[0] and res.history[-1]["train_accuracy"] >= 0.6, res.history  # chance: 0.1


@pytest.mark.parametrize("mode", MODES.names())
def test_frozen_parameters_and_bn_statistics_do_not_change(split, mode):
    m = model()
    before = state(m)
    fit(m, split, FitConfig(mode=mode, epochs=1, **FAST), device="cpu", progress=False)
    after = m.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    bn_buffers = {k for k in before if "running_" in k or "num_batches_tracked" in k}
    if mode == "last_layer":
        assert changed == {"fc.weight", "fc.bias"}  # backbone weights and BatchNorm running stats untouched
        assert all(not p.requires_grad for n, p in m.named_parameters() if not n.startswith("fc."))
    else:
        assert bn_buffers <= changed and "conv1.weight" in changed and "fc.weight" in changed


def test_checkpoint_round_trip_restores_identical_state(split, tmp_path):
    m = model()
    res = fit(m, split, FitConfig(epochs=1, **FAST), device="cpu", progress=False, checkpoint_to=str(tmp_path),
              checkpoint_extra={"key": "k1"})
    assert checkpoint_epoch(tmp_path) == 1 and not list(tmp_path.glob("*.tmp"))
    ck = load_checkpoint(tmp_path)
    assert ck["epoch"] == 1 and ck["key"] == "k1" and ck["config"] == FitConfig(epochs=1, **FAST).as_dict()
    assert ck["history"] == res.history and ck["best_epoch"] == 1
    for k, v in res.model.state_dict().items():
        assert torch.equal(ck["model"][k], v) and torch.equal(ck["best_state"][k], v)
    fresh = model()
    fresh.load_state_dict(ck["model"])
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), m.state_dict().values()))
    opt = build_optimizer("sgd", fresh.parameters(), lr=0.05, weight_decay=5e-4)
    opt.load_state_dict(ck["optimizer"])
    bufs = [opt.state[p]["momentum_buffer"] for g in opt.param_groups for p in g["params"]]
    assert len(bufs) == 62 and all(torch.isfinite(b).all() for b in bufs)
    assert ck["scheduler"]["last_epoch"] == len(split.x_train) // 32
    assert set(ck["rng"]) >= {"torch", "numpy", "python"}


def test_best_weights_are_written_only_when_they_improve(split, tmp_path):
    calls = []
    res = fit(model(), split, FitConfig(epochs=3, **FAST), device="cpu", progress=False, checkpoint_to=str(tmp_path),
              on_checkpoint=lambda folder, epoch, best: calls.append((folder, epoch, best)))
    val = [h["val_accuracy"] for h in res.history]
    assert calls == [(str(tmp_path), e, val[e - 1] > max([-1.0] + val[:e - 1])) for e in (1, 2, 3)]
    best = torch.load(tmp_path / BEST_FILE, weights_only=False)
    assert best["epoch"] == res.best_epoch and best["val_accuracy"] == res.best_val_accuracy
    assert "best_state" not in torch.load(tmp_path / CHECKPOINT_FILE, weights_only=False)  # one copy, in best.pt
    ck = load_checkpoint(tmp_path)
    assert ck["best_file_epoch"] == res.best_epoch
    for k, v in res.model.state_dict().items():
        assert torch.equal(ck["best_state"][k], v) and torch.equal(best["state"][k], v), k


def test_a_kill_between_last_and_best_leaves_a_usable_checkpoint(split, tmp_path):
    fit(model(), split, FitConfig(epochs=1, **FAST), device="cpu", progress=False, checkpoint_to=str(tmp_path))
    (tmp_path / BEST_FILE).unlink()  # last.pt written, best.pt not yet: the epoch that improved is last.pt's own
    ck = load_checkpoint(tmp_path)
    assert ck["best_epoch"] == ck["epoch"] == 1 and ck["best_file_epoch"] == 0
    assert all(torch.equal(ck["best_state"][k], v) for k, v in ck["model"].items())
    # best.pt missing for an epoch that needs it: a clear error, not wrong weights
    last = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=False)
    torch.save({**last, "epoch": 2}, tmp_path / CHECKPOINT_FILE)
    with pytest.raises(CacheError, match="best weights of epoch 1"):
        load_checkpoint(tmp_path)


class Interrupt(Exception):
    pass


def test_resume_continues_at_the_right_epoch_and_matches_an_uninterrupted_fit(split, tmp_path):
    cfg = FitConfig(epochs=2, **FAST)
    full = fit(model(), split, cfg, device="cpu", progress=False)

    def stop_after_first(epoch, record):
        if epoch == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(model(), split, cfg, device="cpu", progress=False, checkpoint_to=str(tmp_path),
            on_epoch_end=stop_after_first)
    assert checkpoint_epoch(tmp_path) == 1
    seen = []
    res = fit(model(), split, cfg, device="cpu", progress=False, checkpoint_to=str(tmp_path),
              resume_from=load_checkpoint(tmp_path), on_epoch_end=lambda e, r: seen.append(e))
    assert res.start_epoch == 2 and seen == [2] and checkpoint_epoch(tmp_path) == 2
    strip = [{k: v for k, v in h.items() if k not in ("epoch_seconds", "images_per_second")} for h in res.history]
    assert strip == [{k: v for k, v in h.items() if k not in ("epoch_seconds", "images_per_second")}
                     for h in full.history]
    assert res.best_epoch == full.best_epoch
    for (k, a), b in zip(res.model.state_dict().items(), full.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_resume_refuses_another_configuration(split, tmp_path):
    fit(model(), split, FitConfig(epochs=1, **FAST), device="cpu", progress=False, checkpoint_to=str(tmp_path))
    with pytest.raises(ParamError, match="another configuration"):
        fit(model(), split, FitConfig(epochs=2, **FAST), device="cpu", progress=False,
            resume_from=load_checkpoint(tmp_path))


def test_augment_shifts_and_flips_within_the_padding():
    x = torch.zeros(64, 28, 28, dtype=torch.uint8)
    x[:, 10, 5] = 255  # one bright pixel, off-centre so a flip is visible
    out = augment_batch(x, padding=4, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    flips = 0
    for img in out:
        r, c = torch.nonzero(img == 255).tolist()[0] if (img == 255).any() else (None, None)
        assert r is not None and abs(r - 10) <= 4
        assert abs(c - 5) <= 4 or abs(c - (27 - 5)) <= 4
        flips += abs(c - (27 - 5)) <= 4
        assert int((img > 0).sum()) == 1
    assert 10 < flips < 54  # about half are mirrored
    again = augment_batch(x, padding=4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # the draw depends on the generator only
    unflipped = augment_batch(x, padding=0, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(a, x[0]) or torch.equal(a, x[0].flip(-1)) for a in unflipped)


@pytest.mark.parametrize("name", SCHEDULES.names())
def test_schedules_warm_up_then_decay(name):
    p = torch.nn.Parameter(torch.zeros(3, 3))
    opt = build_optimizer("sgd", [p], lr=0.1, weight_decay=0.0)
    sched = build_schedule(name, opt, total_steps=100, warmup=0.2)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    peak = int(np.argmax(lrs))
    assert 15 <= peak <= 21 and max(lrs) == pytest.approx(0.1, rel=0.05)
    assert all(a <= b + 1e-12 for a, b in zip(lrs[:peak], lrs[1:peak + 1]))  # rising warm-up
    assert all(a >= b - 1e-12 for a, b in zip(lrs[peak:], lrs[peak + 1:]))  # then decaying
    assert lrs[0] < 0.02 and lrs[-1] < 0.005


def _handwritten_onecycle(total_steps: int, warmup: float):
    """The one-cycle factor of runs made before OneCycleLR (a LambdaLR): the reference curve."""
    import math

    w = _warmup_steps(total_steps, warmup)
    start, end = 1.0 / 25.0, 1.0 / 25.0 / 1e4

    def factor(step: int) -> float:
        if step < w:
            return start + (1.0 - start) * 0.5 * (1.0 - math.cos(math.pi * step / w))
        t = min(step - w, total_steps - w) / max(total_steps - w, 1)
        return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * t))

    return factor


@pytest.mark.parametrize("optimizer", OPTIMIZERS.names())
@pytest.mark.parametrize("total_steps,warmup", [(100, 0.2), (4690, 0.2), (37, 0.3), (10, 0.05), (7, 0.5), (4, 0.2),
                                                (2, 0.2), (100, 0.0), (1, 0.2)])
def test_onecycle_is_torch_onecyclelr_with_the_handwritten_curve(optimizer, total_steps, warmup):
    p = torch.nn.Parameter(torch.zeros(3, 3))
    opt = build_optimizer(optimizer, [p], lr=0.05, weight_decay=5e-4)
    sched = build_schedule("onecycle", opt, total_steps=total_steps, warmup=warmup)
    assert isinstance(sched, torch.optim.lr_scheduler.OneCycleLR)
    momentum = {k: opt.param_groups[0][k] for k in ("momentum", "betas") if k in opt.param_groups[0]}
    got = []
    for _ in range(total_steps):
        got.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    got.append(opt.param_groups[0]["lr"])  # after the last batch: the anneal's end
    ref = [0.05 * _handwritten_onecycle(total_steps, warmup)(s) for s in range(total_steps + 1)]
    w = _warmup_steps(total_steps, warmup)
    print(f"T={total_steps} warmup={warmup} w={w}\n new: {np.array(got[:12])}\n old: {np.array(ref[:12])}")
    # w == 0: OneCycleLR cannot peak at step 0 (it divides by the warm-up's length); the peak sits 1e-9 step before
    assert got == pytest.approx(ref, rel=1e-12 if w else 1e-8, abs=0)
    assert int(np.argmax(got)) == w and got[w] == pytest.approx(0.05, rel=1e-12)
    assert got[0] == pytest.approx(0.05 / 25 if w else 0.05, rel=1e-12)
    assert got[-1] == pytest.approx(0.05 / 25 / 1e4, rel=1e-9)
    assert {k: opt.param_groups[0][k] for k in momentum} == momentum  # cycle_momentum=False: as before


def test_a_checkpoint_of_the_handwritten_onecycle_refuses_to_resume(split, tmp_path):
    cfg = FitConfig(epochs=2, **FAST)

    def stop(epoch, record):
        raise Interrupt

    with pytest.raises(Interrupt):
        fit(model(), split, cfg, device="cpu", progress=False, checkpoint_to=str(tmp_path),
            checkpoint_extra={"run_id": "0123abcd"}, on_epoch_end=stop)
    ck = load_checkpoint(tmp_path)
    assert ck["schedule_impl"] == "torch.OneCycleLR"
    check_checkpoint(ck)  # today's: resumable
    old = {k: v for k, v in ck.items() if k != "schedule_impl"}  # what a LambdaLR one-cycle run's checkpoint held
    for call in (lambda: check_checkpoint(old),
                 lambda: fit(model(), split, cfg, device="cpu", progress=False, resume_from=old)):
        with pytest.raises(ParamError) as e:
            call()
        msg = str(e.value)
        assert "\n" not in msg and "run 0123abcd" in msg and "old hand-written" in msg and "start a new run" in msg
    # the cosine schedule did not change: its checkpoints never recorded the field and still resume
    check_checkpoint({**old, "config": {**old["config"], "schedule": "cosine"}})


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_optimizers_decay_only_weights(name):
    m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    opt = build_optimizer(name, m.parameters(), lr=0.01, weight_decay=0.1)
    decays = {tuple(p.shape): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert decays == {(3, 4): 0.1, (3,): 0.0}
    assert len(param_groups(m.parameters(), 0.1)) == 2


@pytest.mark.parametrize("field,value,message", [
    ("mode", "head", "unknown mode 'head'; choose one of: last_layer, full"),
    ("optimizer", "adam", "unknown optimizer 'adam'; choose one of: sgd, adamw"),
    ("schedule", "step", "unknown schedule 'step'; choose one of: cosine, onecycle"),
    ("epochs", 0, "epochs must be > 0"),
    ("lr", 0.0, "lr must be > 0"),
    ("lr", -1.0, "lr must be > 0"),
    ("batch_size", 0, "batch_size must be > 0"),
])
def test_bad_config_is_one_clear_error(field, value, message):
    with pytest.raises((ChoiceError, ParamError)) as e:
        FitConfig(**{field: value}).validate()
    assert message in str(e.value) and "\n" not in str(e.value)


def test_exported_model_takes_raw_pixels(split):
    m = model().eval()
    x = torch.from_numpy(split.x_val[:4]).float() / 255
    for size in (16, 28, 32):
        ref = m(imagenet_preprocess(x, size))
        got = export_model(m, size)(x)
        assert torch.allclose(got, ref, atol=1e-4), size
