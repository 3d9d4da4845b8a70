"""examples/train.py end to end on small synthetic datasets: resume, init-from, mixed precision
and the gradient flags, bad options, torchrun, N-MNIST."""

import json
import math
import os
import re
import subprocess
import sys

import pytest
import torch

from data_files import write_dataset, write_synthetic_nmnist
from example_runner import TRAIN, free_port, load_example, run_cli, tiny_run_args


@pytest.mark.slow
def test_cli_end_to_end_and_resume(tmp_path):
    root = write_dataset(str(tmp_path / "data"), n_train=48, n_test=20)
    out = str(tmp_path / "run")
    common = tiny_run_args(root, out, epochs=None) + ["--lr-schedule", "cosine", "--val-size", "8"]
    res = run_cli(*common, "--epochs", "1")
    assert res.returncode == 0, res.stderr
    assert "epoch 1/1" in res.stdout
    for name in ("metrics.json", "curves.png", "raster.png", "checkpoint.pt"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    first = torch.load(os.path.join(out, "checkpoint.pt"), weights_only=False)
    res = run_cli(*common, "--epochs", "3", "--resume")
    assert res.returncode == 0, res.stderr
    # Another --epochs on resume: the cosine schedule is the one planned for 3 epochs from
    # here on (epoch 1 of 1 had annealed the rate to 0; kept, the run would not move).
    last = torch.load(os.path.join(out, "checkpoint.pt"), weights_only=False)
    assert last["schedule_changes"] == [{"after_epoch": 1, "epochs_before": 1, "epochs": 3}]
    assert last["scheduler"]["T_max"] == 3 and last["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0, abs=1e-12)
    assert first["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0, abs=1e-12)
    assert any(not torch.equal(first["model"][k], last["model"][k]) for k in first["model"])
    assert "epoch 2/3" in res.stdout and "epoch 1/3" not in res.stdout
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert m["epochs"] == 3 and len(m["train_loss"]) == 3
    # with a validation split the test set is scored after the last epoch only (here the
    # last of each invocation: epoch 1 ended the first run)
    test_per_epoch = m["test_accuracy_per_epoch"]
    assert test_per_epoch[1] is None and None not in (test_per_epoch[0], test_per_epoch[2])
    assert "test acc" not in res.stdout.split("epoch 3/3")[0]
    assert 0 <= m["test_accuracy"] <= 1 and m["wall_time_s"] > 0
    assert len(m["firing_rate"]) == 2 and m["config"]["hidden_size"] == 16
    assert all(0 <= v <= 1 for v in m["val_accuracy_per_epoch"])
    assert "val acc" in res.stdout
    assert "no validation split" not in res.stderr
    # resuming with another --weight-decay (other optimizer groups) is refused cleanly
    res = run_cli(*common, "--epochs", "4", "--resume", "--weight-decay", "0.1")
    assert res.returncode != 0 and "--weight-decay" in res.stderr and "Traceback" not in res.stderr
    # ... and with fewer epochs than it has trained
    res = run_cli(*common, "--epochs", "2", "--resume")
    assert res.returncode != 0 and "already trained 3 epochs" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.slow
def test_cli_init_from_checkpoint(tmp_path):
    root = write_dataset(str(tmp_path / "data"), n_train=32, n_test=16)
    common = tiny_run_args(root)
    first = str(tmp_path / "first")
    assert run_cli(*common, "--out", first, "--seed", "1").returncode == 0
    source = os.path.join(first, "checkpoint.pt")
    # a different seed would start from other weights; a vanishing lr keeps the loaded ones
    second = str(tmp_path / "second")
    res = run_cli(*common, "--out", second, "--seed", "2", "--init-from", source, "--lr", "1e-12")
    assert res.returncode == 0, res.stderr
    a = torch.load(source, weights_only=False)["model"]
    b = torch.load(os.path.join(second, "checkpoint.pt"), weights_only=False)["model"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-6, atol=1e-9, msg=k)
    m = json.load(open(os.path.join(second, "metrics.json")))
    assert m["epochs"] == 1 and m["init_from_epochs"] == 1
    # paths are written relative to the working directory, not as this machine's folders
    assert not any(os.path.isabs(m["config"][k]) for k in ("init_from", "out", "data_dir"))
    assert os.path.abspath(m["config"]["init_from"]) == source
    # a checkpoint of another architecture, or --resume alongside, is refused cleanly
    res = run_cli(*common, "--out", str(tmp_path / "third"), "--hidden-size", "8", "--init-from", source)
    assert res.returncode != 0 and "does not fit this model" in res.stderr and "Traceback" not in res.stderr
    res = run_cli(*common, "--out", second, "--init-from", source, "--resume")
    assert res.returncode != 0 and "exclude each other" in res.stderr


@pytest.mark.slow
def test_cli_mixed_precision_and_gradient_flags(tmp_path):
    # bf16 autocast (the CPU speed path) with the non-default gradient settings, end to end
    root = write_dataset(str(tmp_path / "data"), n_train=32, n_test=16)
    out = str(tmp_path / "run")
    res = run_cli(
        *tiny_run_args(root, out),
        "--hidden-layers",
        "2",
        "--device",
        "cpu",
        "--amp",
        "bf16",
        "--no-detach-recurrent",
        "--no-straight-through",
        "--hidden-init",
        "identity",
        "--trainable-readout",
        "--augment-shift",
        "2",
        "--augment-flip",
        "--weight-decay",
        "1e-4",
        "--dropout",
        "0.2",
    )
    assert res.returncode == 0, res.stderr
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert m["config"]["amp"] == "bf16" and m["config"]["hidden_init"] == "identity"
    assert m["config"]["trainable_readout"] is True
    assert m["config"]["augment_shift"] == 2 and m["config"]["weight_decay"] == 1e-4
    assert m["config"]["augment_flip"] is True and m["config"]["dropout"] == 0.2
    assert m["parameters"] == (784 * 16 + 16) + (16 * 16 + 16) + (16 * 100 + 100) + 10 * 100
    assert m["config"]["detach_recurrent"] is False and m["config"]["straight_through"] is False
    assert math.isfinite(m["train_loss"][0]) and len(m["firing_rate"]) == 3
    # where bfloat16 is emulated (no AVX512-BF16 / AMX) the run says that float32 is faster
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert ("no native bfloat16" in res.stderr) == (not native), res.stderr
    # no --val-size: the run says that the test set is scored every epoch
    assert "no validation split (--val-size 0)" in res.stderr, res.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["--dataset", "cifar"], "invalid choice"),
        (["--epochs", "0"], "--epochs must be positive"),
        (["--hidden-size", "-3"], "--hidden-size must be positive"),
        (["--batch-size", "0"], "--batch-size must be positive"),
        (["--data-dir", "/nonexistent-srcext"], "not found|could not download"),
        (["--val-size", "-1"], "--val-size must be >= 0"),
        (["--amp", "fp16", "--device", "cpu"], "--amp fp16 needs --device cuda"),
        (["--amp", "int8"], "invalid choice"),
        (["--augment-shift", "-1"], "--augment-shift must be >= 0"),
        (["--dataset", "nmnist", "--augment-shift", "2"], "--augment-shift applies to static images"),
        (["--dataset", "nmnist", "--augment-flip"], "--augment-flip applies to static images"),
        (["--weight-decay", "-0.1"], "--weight-decay must be >= 0"),
        (["--dropout", "1"], "--dropout must be in \\[0, 1\\)"),
        (["--init-from", "/nonexistent-srcext/checkpoint.pt"], "--init-from: no checkpoint"),
    ],
)
def test_cli_bad_options_exit_cleanly(args, message, tmp_path, capsys):
    # in-process (a subprocess per case costs seconds): main() returns, or argparse exits, with
    # a non-zero status and a one-line message; an uncaught exception would fail the test
    train = load_example("train")
    try:
        status = train.main(["--out", str(tmp_path / "o"), "--no-progress", *args])
    except SystemExit as exc:
        status = exc.code
    assert status not in (0, None)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(message, err), err


@pytest.mark.slow
def test_cli_torchrun_two_processes(tmp_path):
    root = write_dataset(str(tmp_path / "data"), n_train=32, n_test=16)
    out = str(tmp_path / "ddp")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        TRAIN,
        *tiny_run_args(root, out, batch_size=8, hidden_size=8, steps=10, silent_steps=2),
        "--device",
        "cpu",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert m["processes"] == 2 and m["epochs"] == 1


@pytest.mark.slow
def test_nmnist_cli_trains_on_synthetic_tree(tmp_path):
    pytest.importorskip("tonic")
    write_synthetic_nmnist(str(tmp_path / "nm"), train=True)
    write_synthetic_nmnist(str(tmp_path / "nm"), train=False, seed=1)
    out = str(tmp_path / "run")
    nmnist = tiny_run_args(
        tmp_path / "nm", out, dataset="nmnist", batch_size=10, hidden_size=8, steps=10, silent_steps=None
    )
    res = run_cli(*nmnist, "--limit-train", "40", "--limit-test", "20", "--val-size", "30")
    assert res.returncode == 0, res.stderr[-2000:]
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert m["epochs"] == 1 and 0 <= m["val_accuracy_per_epoch"][0] <= 1
    assert "val acc" in res.stdout and "no validation split" not in res.stderr


@pytest.mark.slow
def test_nmnist_splits_mix_every_digit_and_hold_out_validation(tmp_path):
    # tonic lists N-MNIST digit by digit: the first 40 recordings would all be zeros, and a
    # validation split cut from the end all nines
    pytest.importorskip("tonic")
    root = str(tmp_path / "nm")
    write_synthetic_nmnist(root, train=True)
    common = load_example("common")
    full = common.NMNISTFrames(root, "train", 10)
    assert len(full) == 10_000 and sorted(full.recordings.tolist()) == list(range(10_000))
    first = common.NMNISTFrames(root, "train", 10, limit=40)
    assert first.labels.unique().numel() == 10
    # the order is fixed: the same recordings in every run, whatever torch's global seed
    torch.manual_seed(123)
    assert torch.equal(common.NMNISTFrames(root, "train", 10, limit=40).recordings, first.recordings)
    train = common.NMNISTFrames(root, "train", 10, val_size=500)
    val = common.NMNISTFrames(root, "val", 10, val_size=500)
    assert len(train) == 9_500 and len(val) == 500
    assert set(train.recordings.tolist()).isdisjoint(val.recordings.tolist())
    assert val.labels.unique().numel() == 10 and train.labels.unique().numel() == 10
    # a batch carries the recordings it names: the synthetic digit d fires rows 3d .. 3d+2
    x, y = next(val.batches(torch.arange(5, 25), 20, "cpu", None))
    assert torch.equal(y, val.labels[5:25])
    rows = x.reshape(x.shape[0], 20, 2, 34, 34).sum(dim=(0, 2, 4))
    for b in range(20):
        assert set((rows[b].nonzero().flatten() // 3).tolist()) == {int(y[b])}
    with pytest.raises(common.UsageError, match="--val-size 10000 leaves no training data"):
        common.NMNISTFrames(root, "train", 10, val_size=10_000)


def test_curves_show_training_validation_and_test_accuracy(tmp_path):
    # The curves say whether a run under- or overfits, so training accuracy is drawn beside
    # validation; histories written before it was recorded still plot.
    train = load_example("train")
    history = [
        {
            "epoch": e,
            "train_loss": 1.0 / e,
            "train_accuracy": 0.5 + 0.1 * e,
            "val_accuracy": 0.5 + 0.05 * e,
            "test_accuracy": 0.7 if e == 3 else None,
        }
        for e in (1, 2, 3)
    ]
    assert train.plot_curves(str(tmp_path), history) == ["train", "val", "test"]
    with open(tmp_path / "curves.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    old = [{k: v for k, v in h.items() if k != "train_accuracy"} for h in history]
    assert train.plot_curves(str(tmp_path), old) == ["val", "test"]


@pytest.mark.parametrize("dynamics", ["none", "per-layer", "per-neuron"])
def test_weight_decay_reaches_weight_matrices_only(dynamics):
    # AdamW decays the weight matrices; the biases and the learned cell constants (raw values,
    # for which 0 is no neutral point) keep their values when their gradient is zero.
    train = load_example("train")
    from common import learned_dynamics
    from srcext.models import SRCClassifier

    torch.manual_seed(0)
    model = SRCClassifier(12, 2, hidden_layers=1, hidden_size=5, **learned_dynamics(dynamics))
    assert isinstance(train.make_optimizer(model, 1e-3, 0.0), torch.optim.Adam)
    optimizer = train.make_optimizer(model, 0.1, 0.5)
    assert isinstance(optimizer, torch.optim.AdamW)
    named = dict(model.named_parameters())
    before = {n: p.detach().clone() for n, p in named.items()}
    for p in named.values():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    constants = [n for n in named if "_raw_" in n]
    assert (len(constants) > 0) == (dynamics != "none")
    for n, p in named.items():
        if p.dim() >= 2:  # decayed by lr * weight_decay, nothing else moves it
            torch.testing.assert_close(p.detach(), before[n] * (1 - 0.1 * 0.5))
        else:
            assert torch.equal(p.detach(), before[n]), n


@pytest.mark.slow
def test_cli_without_matplotlib_and_tqdm_trains_saves_and_says_so(tmp_path):
    """The examples' extras missing: the run trains and saves, and says the plots were skipped
    and how to get them (it used to crash on `import matplotlib` after the whole run)."""
    root = write_dataset(str(tmp_path / "data"), n_train=48, n_test=20)
    out = str(tmp_path / "run")
    args = tiny_run_args(root, out, epochs=1)
    blocked = (
        "import runpy, sys; sys.modules['matplotlib'] = None; sys.modules['tqdm'] = None; "
        f"sys.path.insert(0, {os.path.dirname(TRAIN)!r}); sys.argv = [{TRAIN!r}] + sys.argv[1:]; "
        f"runpy.run_path({TRAIN!r}, run_name='__main__')"
    )
    res = subprocess.run([sys.executable, "-c", blocked, *args], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "plots skipped: matplotlib is not installed" in res.stdout
    for name in ("metrics.json", "checkpoint.pt"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    assert not os.path.exists(os.path.join(out, "curves.png"))
