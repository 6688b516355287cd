"""The dataset layer, on small files written in the real formats (IDX, CIFAR pickles, image folders)."""

import gzip
import pickle
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import datasets

from abrnet.errors import UserError
from abrnet.train import datasets as registry
from abrnet.train.data import load_dataset
from abrnet.train.datasets import DATASETS, DatasetInfo
from fakedata import CIFAR_NAMES, COLOURS, _idx_bytes, _py2_pickle, _write_cifar, _write_folders, _write_idx

FASHION = registry.SYSTEM_DIRS["fashion-mnist"]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    # Nothing may come from, or land in, the real ~/.cache/abrnet.
    monkeypatch.setenv("ABRNET_CACHE", str(tmp_path / "cache"))


def _one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# IDX ---------------------------------------------------------------------------------


def test_idx_header_is_what_the_format_says():
    assert _idx_bytes(np.zeros((2, 28, 28)))[:4] == (2051).to_bytes(4, "big")
    assert _idx_bytes(np.zeros(2))[:4] == (2049).to_bytes(4, "big")


@pytest.mark.parametrize(
    "name,subdir,gz",
    [
        ("fashion-mnist", "", True),  # Debian's layout
        ("fashion-mnist", "", False),
        ("fashion-mnist", "FashionMNIST/raw", False),  # what torchvision's download leaves
        ("fashion-mnist", "FashionMNIST/raw", True),
        ("mnist", "MNIST/raw", False),
        ("mnist", "", True),
    ],
)
def test_idx_layouts(tmp_path, name, subdir, gz):
    arrays = _write_idx(tmp_path / subdir, gz)
    train, test, info = load_dataset(name, str(tmp_path))
    assert info == DATASETS[name]
    assert (len(train), len(test)) == (6, 3)
    mean, std = registry.DATASETS[name].mean_std
    for ds, split in ((train, "train"), (test, "t10k")):
        for i in range(len(ds)):
            x, y = ds[i]
            assert x.shape == (1, 28, 28) and x.dtype == torch.float32
            assert y.dtype == torch.int64 and y.ndim == 0
            assert int(y) == arrays[f"{split}-labels-idx1-ubyte"][i]
            pixels = (x * std[0] + mean[0]) * 255
            assert torch.allclose(pixels, torch.as_tensor(arrays[f"{split}-images-idx3-ubyte"][i]).float(), atol=1e-3)


def test_idx_data_dir_with_other_files_is_not_found(tmp_path):
    _write_idx(tmp_path / "MNIST" / "raw", gz=True)
    with pytest.raises(UserError) as e:
        load_dataset("fashion-mnist", tmp_path)  # MNIST files are not Fashion-MNIST
    assert str(tmp_path / "FashionMNIST" / "raw") in _one_line_error(e)


def test_fashion_mnist_missing_says_where_and_how(tmp_path):
    with pytest.raises(UserError) as e:
        load_dataset("fashion-mnist", tmp_path / "nowhere")
    message = _one_line_error(e)
    assert str(tmp_path / "nowhere") in message
    assert "train-images-idx3-ubyte" in message
    assert "apt-get install dataset-fashion-mnist" in message and "--download" in message


def test_fashion_mnist_default_folder_comes_first(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.SYSTEM_DIRS, "fashion-mnist", tmp_path / "debian")
    with pytest.raises(UserError) as e:
        load_dataset("fashion-mnist")
    assert str(tmp_path / "debian") in _one_line_error(e)
    _write_idx(tmp_path / "debian", gz=True)
    assert len(load_dataset("fashion-mnist")[0]) == 6


def test_mnist_default_folder_is_the_cache(tmp_path):
    _write_idx(tmp_path / "cache" / "data" / "MNIST" / "raw", gz=False)
    assert len(load_dataset("mnist", limit=2)[1]) == 2


@pytest.mark.parametrize("damage", ["truncated", "not-gzip", "bad-magic", "count-mismatch"])
def test_idx_corrupt_is_a_user_error(tmp_path, damage):
    _write_idx(tmp_path, gz=True)
    images = tmp_path / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(images.read_bytes())
    if damage == "truncated":
        images.write_bytes(images.read_bytes()[:100])
    elif damage == "not-gzip":
        images.write_bytes(b"not a gzip file")
    elif damage == "bad-magic":
        images.write_bytes(gzip.compress(b"\x00\x00\x01\x03" + raw[4:]))
    else:
        images.write_bytes(gzip.compress(_idx_bytes(np.zeros((5, 28, 28)))))
    with pytest.raises(UserError) as e:
        load_dataset("fashion-mnist", tmp_path)
    assert str(tmp_path) in _one_line_error(e)


def _offline(*args, **kwargs):
    raise URLError("no network in tests")


def test_idx_download_goes_through_torchvision(tmp_path, monkeypatch):
    # torchvision's download() leaves the unzipped files in <root>/MNIST/raw.
    monkeypatch.setattr(datasets.MNIST, "download", lambda self: _write_idx(Path(self.raw_folder), gz=False))
    assert len(load_dataset("mnist", tmp_path, download=True)[0]) == 6
    assert (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()


def test_idx_download_failure_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", _offline)
    with pytest.raises(UserError) as e:
        load_dataset("fashion-mnist", tmp_path, download=True)
    message = _one_line_error(e)
    assert message.startswith(f"could not download fashion-mnist into {tmp_path}") and "no network" in message


@pytest.mark.skipif(not FASHION.is_dir(), reason=f"{FASHION} absent: apt-get install dataset-fashion-mnist")
def test_debian_fashion_mnist():
    train, test, info = load_dataset("fashion-mnist", limit=100)
    assert (len(train), len(test)) == (100, 100)
    assert info.class_names[0] == "T-shirt/top" and info.class_names[-1] == "Ankle boot"
    assert info.num_classes == len(info.class_names) == 10
    x, y = next(iter(DataLoader(train, batch_size=100)))
    assert x.shape == (100, 1, 28, 28) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and int(y.min()) >= 0 and int(y.max()) <= 9
    # Normalised with Fashion-MNIST's usual statistics: roughly zero mean, unit spread.
    assert abs(float(x.mean())) < 0.2 and 0.8 < float(x.std()) < 1.2


# CIFAR-10 ----------------------------------------------------------------------------


def test_py2_pickle_has_8bit_keys_and_loads_as_torchvision_reads_it():
    raw = _py2_pickle({"labels": [1], "data": np.zeros((1, 3), np.uint8)})
    assert b"U\x06labels" in raw and b"X\x06\x00\x00\x00labels" not in raw
    loaded = pickle.loads(raw, encoding="latin1")
    assert loaded["labels"] == [1] and loaded["data"].dtype == np.uint8


def test_cifar10(tmp_path):
    written = _write_cifar(tmp_path)
    train, test, info = load_dataset("cifar10", tmp_path)
    assert info.class_names == tuple(CIFAR_NAMES) and info.input_shape == (3, 32, 32)
    assert (len(train), len(test)) == (10, 2)
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in registry.DATASETS["cifar10"].mean_std)
    for ds, batches in ((train, [f"data_batch_{b}" for b in range(1, 6)]), (test, ["test_batch"])):
        pixels = np.concatenate([written[b][0] for b in batches])
        labels = sum((written[b][1] for b in batches), [])
        for i in range(len(ds)):
            x, y = ds[i]
            assert x.shape == (3, 32, 32) and x.dtype == torch.float32
            assert int(y) == labels[i]
            expected = torch.as_tensor(pixels[i]).view(3, 32, 32).float()
            assert torch.allclose((x * std + mean) * 255, expected, atol=1e-3)


def test_cifar10_data_dir_may_be_the_batches_folder(tmp_path):
    _write_cifar(tmp_path)
    assert len(load_dataset("cifar10", tmp_path / "cifar-10-batches-py", limit=3)[0]) == 3


def test_cifar10_augment_is_a_padded_crop_or_its_mirror(tmp_path):
    _write_cifar(tmp_path)
    plain = load_dataset("cifar10", tmp_path)[0]
    augmented, test, _ = load_dataset("cifar10", tmp_path, train_augment=True)
    assert not test.augment
    torch.manual_seed(0)
    for i in range(len(plain)):
        raw = plain.data[i].float()
        padded = torch.nn.functional.pad(raw, (4, 4, 4, 4))
        crops = [padded[:, t : t + 32, s : s + 32] for t in range(9) for s in range(9)]
        candidates = torch.stack(crops + [c.flip(-1) for c in crops])
        x, y = augmented[i]
        assert int(y) == int(plain[i][1])
        pixels = (x * augmented.std + augmented.mean) * 255
        assert ((candidates - pixels).abs().amax(dim=(1, 2, 3)) < 1e-3).any()
    # Different draws give different crops.
    batches = [torch.stack([augmented[i][0] for i in range(len(augmented))]) for _ in range(2)]
    assert not torch.equal(*batches)


def test_cifar10_missing_and_corrupt(tmp_path):
    with pytest.raises(UserError) as e:
        load_dataset("cifar10", tmp_path)
    message = _one_line_error(e)
    assert str(tmp_path / "cifar-10-batches-py") in message and "data_batch_1" in message and "--download" in message
    _write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(UserError) as e:
        load_dataset("cifar10", tmp_path)
    assert "cifar10" in _one_line_error(e)


def test_cifar10_download(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.CIFAR10, "download", lambda self: _write_cifar(Path(self.root)))
    assert len(load_dataset("cifar10", download=True)[1]) == 2  # into the cache by default
    assert (tmp_path / "cache" / "data" / "cifar-10-batches-py" / "test_batch").is_file()


def test_cifar10_download_failure_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", _offline)
    with pytest.raises(UserError) as e:
        load_dataset("cifar10", tmp_path / "empty", download=True)
    assert "could not download cifar10" in _one_line_error(e)


# ImageFolder (imagenet) --------------------------------------------------------------


@pytest.mark.parametrize("augment", [False, True])
def test_imagenet_folders(tmp_path, augment):
    _write_folders(tmp_path)
    train, test, info = load_dataset("imagenet", tmp_path, train_augment=augment)
    assert info.class_names == ("cat", "dog", "fox") and info.num_classes == 3
    assert info.input_shape == (3, 224, 224)
    assert (len(train), len(test)) == (6, 3)
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in registry.DATASETS["imagenet"].mean_std)
    for ds in (train, test):
        for x, y in ds:
            assert x.shape == (3, 224, 224) and x.dtype == torch.float32
            colour = torch.tensor(COLOURS[info.class_names[y]], dtype=torch.float32).view(3, 1, 1)
            assert torch.allclose(x * std + mean, (colour / 255).expand(3, 224, 224), atol=1e-5)


def test_imagenet_limit(tmp_path):
    _write_folders(tmp_path)
    train, test, _ = load_dataset("imagenet", tmp_path, limit=4)
    assert (len(train), len(test)) == (4, 3)
    assert [y for _, y in train] == [0, 0, 1, 1]


def test_imagenet_errors_describe_the_layout(tmp_path):
    with pytest.raises(UserError) as e:
        load_dataset("imagenet")
    assert "train/<class>/*.JPEG" in _one_line_error(e)
    _write_folders(tmp_path, per_class=(("train", 1),))
    with pytest.raises(UserError) as e:
        load_dataset("imagenet", tmp_path)
    message = _one_line_error(e)
    assert str(tmp_path / "val") in message and "val/<class>/*.JPEG" in message
    (tmp_path / "val").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "val" / "flat.png")  # the official val archive is flat
    with pytest.raises(UserError) as e:
        load_dataset("imagenet", tmp_path)
    assert "val/<class>/*.JPEG" in _one_line_error(e)
    _write_folders(tmp_path, classes={"cat": (0, 0, 0)}, per_class=(("val", 1),))
    with pytest.raises(UserError) as e:
        load_dataset("imagenet", tmp_path)
    assert "differ" in _one_line_error(e)


# digits and the rest -----------------------------------------------------------------


def test_digits_split_is_fixed_and_stratified():
    train, test, info = load_dataset("digits", "/ignored")
    assert info == DatasetInfo("digits", 10, (1, 8, 8), tuple("0123456789"))
    assert (len(train), len(test)) == (1437, 360)
    x_train = torch.stack([x for x, _ in train])
    assert x_train.shape == (1437, 1, 8, 8) and x_train.dtype == torch.float32
    assert abs(float(x_train.mean())) < 1e-5 and abs(float(x_train.std()) - 1) < 1e-3
    y_train, y_test = train.targets, test.targets
    assert y_train.dtype == torch.int64
    shares_train = torch.bincount(y_train, minlength=10) / len(y_train)
    shares_test = torch.bincount(y_test, minlength=10) / len(y_test)
    assert (shares_train - shares_test).abs().max() < 0.01
    # Pixels are 0..16 in scikit-learn, so (x * std + mean) * 16 is an integer.
    undone = (x_train * train.std + train.mean) * 16
    assert torch.allclose(undone, undone.round(), atol=1e-4) and undone.min() >= 0 and undone.max() <= 16
    again = load_dataset("digits", limit=50)[1]
    assert len(again) == 50 and torch.equal(again.data, test.data[:50])


def test_loader_batches_equal_single_items():
    train = load_dataset("digits", limit=64)[0]
    x, y = next(iter(DataLoader(train, batch_size=64)))
    assert torch.equal(x, torch.stack([train[i][0] for i in range(64)]))
    assert torch.equal(y, torch.stack([train[i][1] for i in range(64)]))
    assert torch.equal(train[-1][0], train[63][0])
    with pytest.raises(IndexError):
        train[64]


def test_static_info():
    assert set(DATASETS) == {"digits", "mnist", "fashion-mnist", "cifar10", "imagenet"}
    assert DATASETS["imagenet"].num_classes == 1000 and DATASETS["imagenet"].class_names == ()
    assert DATASETS["cifar10"].class_names[0] == "airplane"
    assert all(info.num_classes == len(info.class_names) for name, info in DATASETS.items() if name != "imagenet")


def test_unknown_name_and_bad_limit():
    with pytest.raises(UserError) as e:
        load_dataset("svhn")
    message = _one_line_error(e)
    assert "svhn" in message and all(name in message for name in DATASETS)
    with pytest.raises(UserError):
        load_dataset("digits", limit=0)
