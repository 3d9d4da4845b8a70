"""srcext.data: the IDX reader, MD5-checked downloads, the rate encoder, random shifts and
N-MNIST through tonic (fast, no network)."""

import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

from srcext import data, datasets
from srcext.data import DatasetNotFound, RateEncoder, load_idx_dataset, read_idx
from srcext.models import SRCClassifier

from data_files import write_dataset, write_idx, write_synthetic_nmnist


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

    monkeypatch.setitem(data.MD5["mnist"], "train-labels-idx1-ubyte", datasets._md5_uncompressed(str(src)))
    path = data.download("mnist", "train-labels-idx1-ubyte", str(tmp_path / "d"), fetch)
    assert np.array_equal(read_idx(path), good)


def test_rate_encoder_statistics_and_determinism():
    images = torch.tensor([[0, 64, 128, 255]], dtype=torch.uint8).repeat(500, 1)
    enc = RateEncoder(gain=0.25, silent_steps=20, input_steps=200)
    g = torch.Generator().manual_seed(3)
    spikes = enc(images, generator=g)
    assert spikes.shape == (220, 500, 4)
    assert spikes[:20].sum() == 0  # silent prefix
    rates = spikes[20:].mean(dim=(0, 1))
    expected = 0.25 * torch.tensor([0, 64, 128, 255]) / 255
    assert torch.allclose(rates, expected.float(), atol=0.005)  # rate = gain * intensity
    again = enc(images, generator=torch.Generator().manual_seed(3))
    assert torch.equal(spikes, again)  # seeded
    other = enc(images, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(spikes, other)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_rate_encoder_dtypes_and_float_images(dtype):
    # uint8 and float images give the same spikes for the same seed, in any output dtype
    images = torch.randint(0, 256, (9, 5, 5), dtype=torch.uint8)
    images[:, 0] = 0  # a row that never spikes
    enc = RateEncoder(gain=0.5, silent_steps=3, input_steps=40)
    spikes = enc(images, generator=torch.Generator().manual_seed(1), dtype=dtype)
    assert spikes.dtype == dtype and spikes.shape == (43, 9, 25)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    assert spikes[:, :, :5].sum() == 0  # zero intensity: no spike
    as_float = enc(images.float() / 255, generator=torch.Generator().manual_seed(1))
    assert torch.equal(spikes.float(), as_float)
    full = enc(torch.full((2, 3), 255, dtype=torch.uint8), generator=torch.Generator().manual_seed(0))
    assert 0.4 < full[3:].mean() < 0.6  # rate = gain at intensity 1


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_random_shift_translates_each_image_within_bounds(dtype):
    B, s = 400, 2
    images = torch.zeros((B, 9, 11), dtype=dtype)
    images[:, 4, 5] = 200  # one bright pixel, far from the border
    images[:, 3, 5] = 100
    shifted = data.random_shift(images, s, torch.Generator().manual_seed(0))
    assert shifted.shape == images.shape and shifted.dtype == dtype
    assert torch.equal(shifted.sum(dim=(1, 2)), images.sum(dim=(1, 2)))  # nothing lost inside
    pos = torch.stack([(img == 200).nonzero()[0] for img in shifted])  # (B, 2)
    offsets = pos - torch.tensor([4, 5])
    assert offsets.abs().max() <= s
    assert torch.equal(pos - torch.tensor([1, 0]), torch.stack([(img == 100).nonzero()[0] for img in shifted]))
    seen = {tuple(o) for o in offsets.tolist()}
    assert len(seen) == (2 * s + 1) ** 2  # every offset occurs, per image
    again = data.random_shift(images, s, torch.Generator().manual_seed(0))
    assert torch.equal(shifted, again)  # seeded
    # content pushed past the border is cut, the rest filled with zeros
    edge = torch.zeros((50, 4, 4), dtype=dtype)
    edge[:, 0, 0] = 1
    cut = data.random_shift(edge, 1, torch.Generator().manual_seed(1))
    assert cut.sum() < 50 and set(cut.unique().tolist()) <= {0, 1}
    assert torch.equal(data.random_shift(images, 0), images)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_random_flip_mirrors_about_half_of_the_images(dtype):
    B = 400
    images = torch.randint(0, 256, (B, 7, 9), generator=torch.Generator().manual_seed(3)).to(dtype)
    flipped = data.random_flip(images, torch.Generator().manual_seed(0))
    assert flipped.shape == images.shape and flipped.dtype == dtype
    same = (flipped == images).flatten(1).all(1)
    mirrored = (flipped == images.flip(-1)).flatten(1).all(1)
    assert torch.equal(same | mirrored, torch.ones(B, dtype=torch.bool))  # each image whole, one way or the other
    assert 150 < mirrored.sum() < 250  # one draw per image, probability 1/2
    assert torch.equal(flipped, data.random_flip(images, torch.Generator().manual_seed(0)))  # seeded
    assert torch.equal(data.random_flip(images, p=0.0), images)
    assert torch.equal(data.random_flip(images, p=1.0), images.flip(-1))
    assert flipped.data_ptr() != images.data_ptr()


def test_random_flip_rejects_bad_input():
    with pytest.raises(ValueError, match="images .B, H, W."):
        data.random_flip(torch.zeros(3, 784))
    for p in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="p must be in"):
            data.random_flip(torch.zeros(3, 5, 5), p=p)


def test_random_shift_rejects_bad_input():
    with pytest.raises(ValueError, match="images .B, H, W."):
        data.random_shift(torch.zeros(3, 784), 2)
    with pytest.raises(ValueError, match="max_shift must be >= 0"):
        data.random_shift(torch.zeros(3, 5, 5), -1)


def test_nmnist_through_tonic_loader(tmp_path):
    pytest.importorskip("tonic")
    write_synthetic_nmnist(str(tmp_path))
    ds = data.nmnist_dataset(str(tmp_path), train=True, n_time_bins=12)
    assert len(ds) == 10_000
    frames, label = ds[1234]
    assert np.asarray(frames).shape == (12, 2, 34, 34) and label == 1
    # every event lands in a frame (tonic's equal-count binning may leave out the very last)
    assert np.asarray(frames).sum() in (5, 6)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(ds, range(0, 10_000, 1000)), batch_size=4, collate_fn=data.collate_frames
    )
    x, y = next(iter(loader))
    assert x.shape == (12, 4, 2 * 34 * 34) and y.tolist() == [0, 1, 2, 3]
    model = SRCClassifier(2 * 34 * 34, hidden_layers=1, hidden_size=16)
    assert model((x > 0).float()).shape == (4, 10)
    windowed = data.nmnist_dataset(
        str(tmp_path), train=True, n_time_bins=None, time_window_us=50_000, first_saccade_only=True
    )
    f, _ = windowed[0]
    assert np.asarray(f).shape[1:] == (2, 34, 34) and np.asarray(f).shape[0] <= 2


def test_data_module_reexports_datasets_and_encoding():
    """srcext.data stays the one import for both halves (datasets, encoding): the same objects,
    so that patching data.MD5 patches what the loader reads."""
    from srcext import encoding

    for name in (
        "DATASETS",
        "MD5",
        "MIRRORS",
        "SPLIT_FILES",
        "SYSTEM_DIRS",
        "NMNIST_SENSOR",
        "DatasetNotFound",
        "read_idx",
        "find_file",
        "download",
        "load_idx_dataset",
        "nmnist_dataset",
        "collate_frames",
    ):
        assert getattr(data, name) is getattr(datasets, name), name
    for name in ("RateEncoder", "random_flip", "random_shift"):
        assert getattr(data, name) is getattr(encoding, name), name
    assert set(data.__all__) <= set(dir(data))


def test_import_srcext_is_enough():
    """The docs write srcext.data.RateEncoder() and srcext.models.SRCClassifier after a plain
    `import srcext` (a fresh interpreter: this one has imported the submodules already); tonic
    is imported only when N-MNIST is read."""
    code = (
        "import sys, srcext\n"
        "assert set(srcext.__all__) <= set(dir(srcext))\n"
        "srcext.data.RateEncoder(); srcext.models.SRCClassifier(4)\n"
        "assert 'tonic' not in sys.modules\n"
        "print('ok')"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr
