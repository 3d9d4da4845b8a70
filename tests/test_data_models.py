"""Data loading, spike encoding, the classifier and the training CLI (fast, no network)."""
import gzip
import json
import math
import os
import shutil
import socket
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

from srcext import data
from srcext.data import DatasetNotFound, RateEncoder, load_idx_dataset, read_idx
from srcext.models import SRCClassifier, fixed_readout

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, "examples", "train.py")


def write_idx(path, array, compress):
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.tobytes()
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(payload)


def write_dataset(root, dataset="mnist", n_train=40, n_test=20, compress=True, seed=0):
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, dataset)
    os.makedirs(folder, exist_ok=True)
    ext = ".gz" if compress else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        for k, label in enumerate(labels):  # a class-dependent bright stripe: learnable
            images[k, 2 + 2 * label: 5 + 2 * label, 4:24] = 255
            images[k] += rng.integers(0, 30, (28, 28), dtype=np.uint8)
        write_idx(os.path.join(folder, f"{split}-images-idx3-ubyte{ext}"), images, compress)
        write_idx(os.path.join(folder, f"{split}-labels-idx1-ubyte{ext}"), labels, compress)
    return root


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_roundtrip(tmp_path, compress):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = str(tmp_path / ("x.idx" + (".gz" if compress else "")))
    write_idx(path, arr, compress)
    assert np.array_equal(read_idx(path), arr)


def test_read_idx_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x00\x00\x0d\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="unsigned-byte"):
        read_idx(str(bad))
    short = tmp_path / "short"
    short.write_bytes(struct.pack(">HBB", 0, 8, 1) + struct.pack(">I", 10) + b"\x01\x02")
    with pytest.raises(ValueError, match="expected 10 bytes"):
        read_idx(str(short))


@pytest.mark.parametrize("layout", ["subfolder", "flat"])
def test_load_dataset_from_data_dir(tmp_path, layout):
    write_dataset(str(tmp_path), "fashion-mnist", compress=layout == "flat")
    root = str(tmp_path)
    if layout == "flat":
        root = str(tmp_path / "fashion-mnist")
    images, labels = load_idx_dataset("fashion-mnist", "test", root, download_missing=False)
    assert images.shape == (20, 28, 28) and images.dtype == torch.uint8
    assert labels.tolist() == [k % 10 for k in range(20)]


def test_missing_files_offline_say_where(tmp_path):
    with pytest.raises(DatasetNotFound, match="train-images-idx3-ubyte.*not found"):
        load_idx_dataset("mnist", "train", str(tmp_path), download_missing=False)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_idx_dataset("cifar", "train", str(tmp_path))


def test_download_verifies_checksum(tmp_path, monkeypatch):
    """A fake fetch: bytes whose MD5 is wrong are rejected (and deleted), and the error names
    the file and the folder to put it in; correct bytes are accepted."""
    good = np.arange(16, dtype=np.uint8)
    src = tmp_path / "src.gz"
    write_idx(str(src), good, True)
    fetched = []

    def fetch(url, dest):
        fetched.append(url)
        shutil.copy(src, dest)

    with pytest.raises(DatasetNotFound, match=r"checksum mismatch.*train-labels-idx1-ubyte"):
        data.download("mnist", "train-labels-idx1-ubyte", str(tmp_path / "d"), fetch)
    assert len(fetched) == len(data.MIRRORS["mnist"])  # every mirror tried
    assert not any(p.name.endswith(".part") for p in (tmp_path / "d" / "mnist").iterdir())

    monkeypatch.setitem(data.MD5["mnist"], "train-labels-idx1-ubyte", data._md5_uncompressed(str(src)))
    path = data.download("mnist", "train-labels-idx1-ubyte", str(tmp_path / "d"), fetch)
    assert np.array_equal(read_idx(path), good)


def test_rate_encoder_statistics_and_determinism():
    images = torch.tensor([[0, 64, 128, 255]], dtype=torch.uint8).repeat(500, 1)
    enc = RateEncoder(gain=0.25, silent_steps=20, input_steps=200)
    g = torch.Generator().manual_seed(3)
    spikes = enc(images, generator=g)
    assert spikes.shape == (220, 500, 4)
    assert spikes[:20].sum() == 0                                    # silent prefix
    rates = spikes[20:].mean(dim=(0, 1))
    expected = 0.25 * torch.tensor([0, 64, 128, 255]) / 255
    assert torch.allclose(rates, expected.float(), atol=0.005)      # rate = gain * intensity
    again = enc(images, generator=torch.Generator().manual_seed(3))
    assert torch.equal(spikes, again)                               # seeded
    other = enc(images, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(spikes, other)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_rate_encoder_dtypes_and_float_images(dtype):
    # uint8 and float images give the same spikes for the same seed, in any output dtype
    images = torch.randint(0, 256, (9, 5, 5), dtype=torch.uint8)
    images[:, 0] = 0                                                  # a row that never spikes
    enc = RateEncoder(gain=0.5, silent_steps=3, input_steps=40)
    spikes = enc(images, generator=torch.Generator().manual_seed(1), dtype=dtype)
    assert spikes.dtype == dtype and spikes.shape == (43, 9, 25)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    assert spikes[:, :, :5].sum() == 0                                # zero intensity: no spike
    as_float = enc(images.float() / 255, generator=torch.Generator().manual_seed(1))
    assert torch.equal(spikes.float(), as_float)
    full = enc(torch.full((2, 3), 255, dtype=torch.uint8), generator=torch.Generator().manual_seed(0))
    assert 0.4 < full[3:].mean() < 0.6                                # rate = gain at intensity 1


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_random_shift_translates_each_image_within_bounds(dtype):
    B, s = 400, 2
    images = torch.zeros((B, 9, 11), dtype=dtype)
    images[:, 4, 5] = 200                                 # one bright pixel, far from the border
    images[:, 3, 5] = 100
    shifted = data.random_shift(images, s, torch.Generator().manual_seed(0))
    assert shifted.shape == images.shape and shifted.dtype == dtype
    assert torch.equal(shifted.sum(dim=(1, 2)), images.sum(dim=(1, 2)))   # nothing lost inside
    pos = torch.stack([(img == 200).nonzero()[0] for img in shifted])       # (B, 2)
    offsets = pos - torch.tensor([4, 5])
    assert offsets.abs().max() <= s
    assert torch.equal(pos - torch.tensor([1, 0]), torch.stack([(img == 100).nonzero()[0] for img in shifted]))
    seen = {tuple(o) for o in offsets.tolist()}
    assert len(seen) == (2 * s + 1) ** 2                  # every offset occurs, per image
    again = data.random_shift(images, s, torch.Generator().manual_seed(0))
    assert torch.equal(shifted, again)                    # seeded
    # content pushed past the border is cut, the rest filled with zeros
    edge = torch.zeros((50, 4, 4), dtype=dtype)
    edge[:, 0, 0] = 1
    cut = data.random_shift(edge, 1, torch.Generator().manual_seed(1))
    assert cut.sum() < 50 and set(cut.unique().tolist()) <= {0, 1}
    assert torch.equal(data.random_shift(images, 0), images)


def test_random_shift_rejects_bad_input():
    with pytest.raises(ValueError, match="images .B, H, W."):
        data.random_shift(torch.zeros(3, 784), 2)
    with pytest.raises(ValueError, match="max_shift must be >= 0"):
        data.random_shift(torch.zeros(3, 5, 5), -1)


def test_fixed_readout_and_model_shapes():
    r = fixed_readout(3, 2)
    assert torch.equal(r, torch.tensor([[1, 1, -0.1, -0.1, -0.1, -0.1],
                                        [-0.1, -0.1, 1, 1, -0.1, -0.1],
                                        [-0.1, -0.1, -0.1, -0.1, 1, 1]]))
    model = SRCClassifier(12, num_classes=3, hidden_layers=2, hidden_size=7, neurons_per_class=2)
    assert not any(p is model.readout for p in model.parameters())
    x = (torch.rand(15, 5, 12) < 0.3).float()
    logits, spikes = model(x, return_spikes=True)
    assert logits.shape == (5, 3)
    assert [s.shape for s in spikes] == [(15, 5, 7), (15, 5, 7), (15, 5, 6)]
    rates = SRCClassifier.firing_rates(spikes)
    assert len(rates) == 3 and all(0 <= r <= 1 for r in rates)
    # the logits are the leaky integrator of readout . s_out at the last step
    a = model.readout_decay
    R = torch.zeros(5, 3)
    for t in range(15):
        R = a * R + spikes[-1][t] @ model.readout.t()
    assert torch.allclose(logits, R, atol=1e-5)


def test_readout_integrator_is_float32_under_autocast():
    # bfloat16 would round a = 0.99 to 0.988 and lose exact step counts beyond 256
    torch.manual_seed(0)
    model = SRCClassifier(12, num_classes=2, hidden_layers=0, neurons_per_class=3, weight_scale=8.0)
    x = (torch.rand(300, 4, 12) < 0.3).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, spikes = model(x, return_spikes=True)
    assert spikes[-1].dtype == torch.bfloat16 and logits.dtype == torch.float32
    s = spikes[-1].double()
    assert s.sum() > 0
    R = torch.zeros(4, 2, dtype=torch.float64)
    for t in range(300):
        R = 0.99 * R + s[t] @ model.readout.double().t()
    assert torch.allclose(logits.double(), R, rtol=1e-5, atol=1e-4)


def test_training_steps_lower_the_loss(tmp_path):
    torch.manual_seed(0)
    write_dataset(str(tmp_path), n_train=64)
    images, labels = load_idx_dataset("mnist", "train", str(tmp_path), download_missing=False)
    enc = RateEncoder(input_steps=40, silent_steps=5)
    model = SRCClassifier(784, hidden_layers=1, hidden_size=32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(enc(images, generator=g)), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])


def load_example(name):
    """Import examples/<name>.py as a module."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "examples", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, TRAIN, *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_cli_end_to_end_and_resume(tmp_path):
    root = write_dataset(str(tmp_path / "data"), n_train=48, n_test=20)
    out = str(tmp_path / "run")
    common = ["--dataset", "mnist", "--data-dir", root, "--batch-size", "16", "--hidden-size", "16",
              "--steps", "20", "--silent-steps", "3", "--out", out, "--no-progress", "--threads", "1",
              "--lr-schedule", "cosine", "--val-size", "8"]
    res = run_cli(*common, "--epochs", "1")
    assert res.returncode == 0, res.stderr
    assert "epoch 1/1" in res.stdout
    for name in ("metrics.json", "curves.png", "raster.png", "checkpoint.pt"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    res = run_cli(*common, "--epochs", "2", "--resume")
    assert res.returncode == 0, res.stderr
    assert "epoch 2/2" in res.stdout and "epoch 1/2" not in res.stdout
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert m["epochs"] == 2 and len(m["train_loss"]) == 2 and len(m["test_accuracy_per_epoch"]) == 2
    assert 0 <= m["test_accuracy"] <= 1 and m["wall_time_s"] > 0
    assert len(m["firing_rate"]) == 2 and m["config"]["hidden_size"] == 16
    assert all(0 <= v <= 1 for v in m["val_accuracy_per_epoch"])
    assert "val acc" in res.stdout


def test_cli_init_from_checkpoint(tmp_path):
    root = write_dataset(str(tmp_path / "data"), n_train=32, n_test=16)
    common = ["--dataset", "mnist", "--data-dir", root, "--batch-size", "16", "--hidden-size", "16",
              "--steps", "20", "--silent-steps", "3", "--no-progress", "--threads", "1", "--epochs", "1"]
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
    assert m["epochs"] == 1 and m["config"]["init_from"] == source and m["init_from_epochs"] == 1
    # a checkpoint of another architecture, or --resume alongside, is refused cleanly
    res = run_cli(*common, "--out", str(tmp_path / "third"), "--hidden-size", "8", "--init-from", source)
    assert res.returncode != 0 and "does not fit this model" in res.stderr and "Traceback" not in res.stderr
    res = run_cli(*common, "--out", second, "--init-from", source, "--resume")
    assert res.returncode != 0 and "exclude each other" in res.stderr


def test_cli_mixed_precision_and_gradient_flags(tmp_path):
    # bf16 autocast (the CPU speed path) with the non-default gradient settings, end to end
    root = write_dataset(str(tmp_path / "data"), n_train=32, n_test=16)
    out = str(tmp_path / "run")
    res = run_cli("--dataset", "mnist", "--data-dir", root, "--batch-size", "16", "--hidden-size", "16",
                  "--hidden-layers", "2", "--steps", "20", "--silent-steps", "3", "--out", out,
                  "--no-progress", "--threads", "1", "--epochs", "1", "--device", "cpu",
                  "--amp", "bf16", "--no-detach-recurrent", "--no-straight-through", "--hidden-init", "identity",
                  "--trainable-readout", "--augment-shift", "2", "--weight-decay", "1e-4")
    assert res.returncode == 0, res.stderr
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert m["config"]["amp"] == "bf16" and m["config"]["hidden_init"] == "identity"
    assert m["config"]["trainable_readout"] is True
    assert m["config"]["augment_shift"] == 2 and m["config"]["weight_decay"] == 1e-4
    assert m["parameters"] == (784 * 16 + 16) + (16 * 16 + 16) + (16 * 100 + 100) + 10 * 100
    assert m["config"]["detach_recurrent"] is False and m["config"]["straight_through"] is False
    assert math.isfinite(m["train_loss"][0]) and len(m["firing_rate"]) == 3


@pytest.mark.parametrize("args,message", [
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
    (["--weight-decay", "-0.1"], "--weight-decay must be >= 0"),
    (["--init-from", "/nonexistent-srcext/checkpoint.pt"], "--init-from: no checkpoint"),
])
def test_cli_bad_options_exit_cleanly(args, message, tmp_path):
    res = run_cli("--out", str(tmp_path / "o"), "--no-progress", *args)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    import re
    assert re.search(message, res.stderr), res.stderr


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_torchrun_two_processes(tmp_path):
    root = write_dataset(str(tmp_path / "data"), n_train=32, n_test=16)
    out = str(tmp_path / "ddp")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()), TRAIN,
           "--dataset", "mnist", "--data-dir", root, "--batch-size", "8", "--hidden-size", "8",
           "--steps", "10", "--silent-steps", "2", "--epochs", "1", "--out", out,
           "--no-progress", "--threads", "1", "--device", "cpu"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert m["processes"] == 2 and m["epochs"] == 1


# ---- N-MNIST through tonic's own loader, on recordings written in its on-disk format ----

def write_nmnist_bin(path, events):
    """N-MNIST's 40-bit event records: x, y, polarity bit 7 + timestamp (23 bits)."""
    raw = bytearray()
    for x, y, t, p in events:
        raw += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    with open(path, "wb") as f:
        f.write(raw)


def write_synthetic_nmnist(root, per_class=1000, train=True, seed=0):
    """A tree tonic.datasets.NMNIST accepts offline: the archive's name present and at least
    10,000 recordings under NMNIST/Train (or Test)/<digit>/."""
    rng = np.random.default_rng(seed)
    base = os.path.join(root, "NMNIST")
    folder = os.path.join(base, "Train" if train else "Test")
    os.makedirs(base, exist_ok=True)
    open(os.path.join(base, "train.zip" if train else "test.zip"), "wb").close()
    for digit in range(10):
        d = os.path.join(folder, str(digit))
        os.makedirs(d, exist_ok=True)
        for k in range(per_class):
            n = 6
            events = [(int(rng.integers(0, 34)), int(3 * digit + rng.integers(0, 3)),
                       int(t), int(rng.integers(0, 2))) for t in np.sort(rng.integers(0, 300_000, n))]
            write_nmnist_bin(os.path.join(d, f"{k:05d}.bin"), events)


def test_nmnist_through_tonic_loader(tmp_path):
    pytest.importorskip("tonic")
    write_synthetic_nmnist(str(tmp_path))
    ds = data.nmnist_dataset(str(tmp_path), train=True, n_time_bins=12)
    assert len(ds) == 10_000
    frames, label = ds[1234]
    assert np.asarray(frames).shape == (12, 2, 34, 34) and label == 1
    # every event lands in a frame (tonic's equal-count binning may leave out the very last)
    assert np.asarray(frames).sum() in (5, 6)
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, range(0, 10_000, 1000)),
                                         batch_size=4, collate_fn=data.collate_frames)
    x, y = next(iter(loader))
    assert x.shape == (12, 4, 2 * 34 * 34) and y.tolist() == [0, 1, 2, 3]
    model = SRCClassifier(2 * 34 * 34, hidden_layers=1, hidden_size=16)
    assert model((x > 0).float()).shape == (4, 10)
    windowed = data.nmnist_dataset(str(tmp_path), train=True, n_time_bins=None,
                                   time_window_us=50_000, first_saccade_only=True)
    f, _ = windowed[0]
    assert np.asarray(f).shape[1:] == (2, 34, 34) and np.asarray(f).shape[0] <= 2


def test_nmnist_cli_trains_on_synthetic_tree(tmp_path):
    pytest.importorskip("tonic")
    write_synthetic_nmnist(str(tmp_path / "nm"), train=True)
    write_synthetic_nmnist(str(tmp_path / "nm"), train=False, seed=1)
    out = str(tmp_path / "run")
    res = run_cli("--dataset", "nmnist", "--data-dir", str(tmp_path / "nm"), "--epochs", "1",
                  "--limit-train", "40", "--limit-test", "20", "--batch-size", "10",
                  "--hidden-size", "8", "--steps", "10", "--out", out, "--no-progress",
                  "--threads", "1")
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.load(open(os.path.join(out, "metrics.json")))["epochs"] == 1


def test_summarize_results_table(tmp_path, capsys):
    summarize = load_example("summarize_results")
    for name, layers, acc in (("a", 1, 0.9712), ("deep/b", 10, 0.5)):
        os.makedirs(tmp_path / name)
        metrics = {"test_accuracy": acc, "epochs": 3, "wall_time_s": 600.0, "firing_rate": [0.03, 0.05],
                   "parameters": 1234, "val_accuracy_per_epoch": [0.8, 0.81],
                   "config": {"dataset": "mnist", "hidden_layers": layers, "hidden_size": 128}}
        with open(tmp_path / name / "metrics.json", "w") as f:
            json.dump(metrics, f)
    # a run trained on from run a's checkpoint, with several codings evaluated
    os.makedirs(tmp_path / "a_on")
    metrics["config"] = {"dataset": "mnist", "hidden_layers": 1, "hidden_size": 128,
                         "init_from": str(tmp_path / "a" / "checkpoint.pt")}
    with open(tmp_path / "a_on" / "metrics.json", "w") as f:
        json.dump(metrics, f)
    with open(tmp_path / "a_on" / "evaluate_encodings.json", "w") as f:
        json.dump({"accuracy_by_encodings": {"1": 0.5, "5": 0.98765}}, f)
    assert summarize.main(["--root", str(tmp_path), "--json", str(tmp_path / "s.json")]) == 0
    table = capsys.readouterr().out
    assert "| a | mnist | hidden 1 x 128 | 3 | 97.12 % | 81.00 % | 10 min | 3.0, 5.0 % | 1,234 |  |" in table
    assert "| a_on | mnist | hidden 1 x 128 | 3 + 3 | 50.00 % |" in table and "| 98.77 % (5) |" in table
    assert "deep/b" in table
    rows = json.load(open(tmp_path / "s.json"))
    assert [r["run"] for r in rows] == ["a", "a_on", "deep/b"] and rows[2]["hidden_layers"] == 10
    assert summarize.main(["--root", str(tmp_path / "nothing")]) == 1


def test_identity_hidden_init():
    torch.manual_seed(0)
    uniform = SRCClassifier(20, hidden_layers=3, hidden_size=16, weight_scale=4.0)
    torch.manual_seed(0)
    ident = SRCClassifier(20, hidden_layers=3, hidden_size=16, weight_scale=4.0, hidden_init="identity",
                          identity_gain=3.0, identity_noise=0.25)
    w_u = [layer.weight_l0 for layer in uniform.layers]
    w_i = [layer.weight_l0 for layer in ident.layers]
    # input -> hidden 1 and hidden 3 -> output keep the uniform init
    assert torch.equal(w_u[0], w_i[0]) and torch.equal(w_u[3], w_i[3])
    for k in (1, 2):                                   # the square hidden -> hidden layers
        assert torch.allclose(w_i[k], 3.0 * torch.eye(16) + 0.25 * w_u[k])
    with pytest.raises(ValueError, match="hidden_init"):
        SRCClassifier(20, hidden_init="orthogonal")


def test_identity_init_keeps_the_image_in_deep_layers():
    # the property the option exists for, measured as examples/signal_propagation.py does
    sp = load_example("signal_propagation")
    torch.manual_seed(1)
    images = torch.zeros(16, 64)
    for b in range(16):                                 # 16 different bar images
        images[b, (b * 4) % 64:(b * 4) % 64 + 12] = 1.0
    images = (images * 255).to(torch.uint8)
    enc = RateEncoder(input_steps=120)
    result = {}
    for init in ("uniform", "identity"):
        torch.manual_seed(0)
        model = SRCClassifier(64, hidden_layers=6, hidden_size=64, hidden_init=init)
        rows = sp.count_statistics(model, images, enc, torch.Generator().manual_seed(0))
        assert len(rows) == 7 and all(0 <= r["firing_rate"] <= 1 for r in rows)
        result[init] = rows[5]["image_variance"]        # hidden layer 6
    assert result["identity"] > 5 * result["uniform"], result


def test_signal_propagation_cli(tmp_path, capsys):
    root = write_dataset(str(tmp_path / "data"), n_train=8, n_test=8)
    sp = load_example("signal_propagation")
    out = tmp_path / "rows.json"
    assert sp.main(["--data-dir", root, "--hidden-layers", "2", "--hidden-size", "8", "--images", "4",
                    "--json", str(out)]) == 0
    assert "hidden 2" in capsys.readouterr().out
    assert len(json.load(open(out))) == 3


def test_classifier_from_config_rebuilds_a_checkpointed_model():
    cfg = {"hidden_layers": 2, "hidden_size": 12, "neurons_per_class": 3, "readout_decay": 0.95,
           "trainable_readout": True, "hidden_init": "identity", "detach_recurrent": False,
           "lr": 0.1, "dataset": "mnist"}                     # training-only keys are ignored
    model = SRCClassifier.from_config(20, cfg)
    assert [tuple(layer.weight_l0.shape) for layer in model.layers] == [(12, 20), (12, 12), (30, 12)]
    assert isinstance(model.readout, torch.nn.Parameter) and model.readout_decay == 0.95
    assert model.layers[0].detach_recurrent is False
    again = SRCClassifier.from_config(20, cfg)
    again.load_state_dict(model.state_dict())                 # same keys and shapes
    x = (torch.rand(15, 4, 20) < 0.3).float()
    assert torch.equal(again(x), model(x))


def test_evaluate_averages_the_logits_of_several_codings(tmp_path, capsys):
    ev = load_example("evaluate")
    torch.manual_seed(0)
    model = SRCClassifier(25, hidden_size=16, neurons_per_class=2)
    images = torch.randint(0, 256, (10, 5, 5), dtype=torch.uint8)
    labels = torch.arange(10) % 10
    enc = RateEncoder(silent_steps=2, input_steps=30)
    got = ev.accuracy_by_encodings(model, images, labels, enc, [1, 3], 4, torch.Generator().manual_seed(5))
    # by hand: per batch of 4, three codings in turn from the same generator
    g = torch.Generator().manual_seed(5)
    want = {1: 0, 3: 0}
    with torch.no_grad():
        for start in range(0, 10, 4):
            x, y = images[start:start + 4], labels[start:start + 4]
            logits = [model(enc(x, generator=g)) for _ in range(3)]
            want[1] += int((logits[0].argmax(1) == y).sum())
            want[3] += int((sum(logits).argmax(1) == y).sum())
    assert got == {k: v / 10 for k, v in want.items()}

    # the script on a checkpoint written by train.py
    root = write_dataset(str(tmp_path / "data"), n_train=32, n_test=16)
    out = str(tmp_path / "run")
    res = run_cli("--dataset", "mnist", "--data-dir", root, "--batch-size", "16", "--hidden-size", "16",
                  "--steps", "20", "--silent-steps", "3", "--out", out, "--no-progress", "--threads", "1",
                  "--epochs", "1", "--trainable-readout")
    assert res.returncode == 0, res.stderr
    result = tmp_path / "eval.json"
    assert ev.main(["--checkpoint", os.path.join(out, "checkpoint.pt"), "--encodings", "1", "2",
                    "--json", str(result), "--threads", "1"]) == 0
    r = json.load(open(result))
    assert set(r["accuracy_by_encodings"]) == {"1", "2"} and r["images"] == 16 and r["epoch"] == 1
    assert all(0 <= v <= 1 for v in r["accuracy_by_encodings"].values())
    assert "2 coding(s) averaged" in capsys.readouterr().out
    assert ev.main(["--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "cannot read a train.py checkpoint" in capsys.readouterr().err
