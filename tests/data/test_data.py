"""ebm_ppl.data: built-in sets, splits, scaling, dequantisation, user data, errors."""

import math
import os

import jax
import numpy as np
import pytest

from ebm_ppl import data


@pytest.mark.parametrize("name", data.names())
def test_builtin_shapes_and_range(name):
    inf = data.info(name)
    for split in ("train", "validation", "test"):
        x = data.load(name, split)
        assert x.dtype == np.float32
        assert x.shape == (inf["sizes"][split], *inf["data_shape"])
    assert data.load(name, "all").shape[0] == inf["sizes"]["all"]
    if inf["levels"] is not None:
        assert x.min() >= -1 and x.max() <= 1
    else:  # 2-D sets: roughly [-1, 1], std of order 0.5
        tr = data.load(name, "train")
        assert np.all(np.abs(tr) < 1.6)
        assert np.all((tr.std(0) > 0.25) & (tr.std(0) < 0.7))


def test_digits_split_fixed_and_disjoint():
    inf = data.info("digits")
    assert inf["levels"] == 17 and inf["data_shape"] == (8, 8, 1)
    assert inf["sizes"] == {"train": 1200, "validation": 237, "test": 360, "all": 1797}
    from sklearn.datasets import load_digits

    raw = load_digits().images.reshape(-1, 64)
    allx = data.load("digits", "all").reshape(-1, 64)
    v = data.to_raw(allx, inf)
    np.testing.assert_array_equal(v, raw)  # bin centres map back exactly
    # Bin centres: x = (v + 1/2) 2/17 - 1.
    np.testing.assert_allclose(allx, (raw + 0.5) * 2 / 17 - 1, atol=1e-6)
    # Splits are a permutation of the 1797 images (fixed seed): index sets disjoint and covering.
    perm = np.random.default_rng(data.DIGITS_SEED).permutation(1797)
    np.testing.assert_array_equal(data.load("digits", "train").reshape(-1, 64), allx[perm[:1200]])
    np.testing.assert_array_equal(data.load("digits", "test").reshape(-1, 64), allx[perm[1437:]])
    np.testing.assert_array_equal(data.labels("digits", "test"), load_digits().target[perm[1437:]])
    assert len(set(perm[:1200]) | set(perm[1200:1437]) | set(perm[1437:])) == 1797
    # load returns a copy: mutating it does not change the next load
    x = data.load("digits", "train")
    x[:] = 0
    assert data.load("digits", "train").std() > 0.1


def test_patches_levels_and_disjoint_regions():
    inf = data.info("patches")
    assert inf["levels"] == 256 and inf["data_shape"] == (8, 8, 1)
    cols = [data.PATCHES_COLUMNS[s] for s in ("train", "validation", "test")]
    for (_, a1), (b0, _) in zip(cols, cols[1:]):
        assert a1 <= b0  # column bands do not overlap, patches lie inside their band
    te = data.load("patches", "test")
    np.testing.assert_array_equal(te, data.load("patches", "test"))  # deterministic
    v = data.to_raw(te, inf)
    np.testing.assert_allclose(te, (v + 0.5) * 2 / 256 - 1, atol=1e-6)


@pytest.mark.parametrize("name", data.TWO_D_NAMES)
def test_2d_deterministic_and_splits_differ(name):
    a = data.load(name, "validation")
    np.testing.assert_array_equal(a, data.load(name, "validation"))
    b = data.load(name, "test")
    assert not np.allclose(a[:100], b[:100])
    s1 = data.sample_2d(name, jax.random.key(0), 50)
    np.testing.assert_array_equal(s1, data.sample_2d(name, jax.random.key(0), 50))
    assert not np.allclose(s1, data.sample_2d(name, jax.random.key(1), 50))
    assert data.sample_2d(name, 3, 7).shape == (7, 2)
    assert data.info(name)["levels"] is None


def test_dequantize_in_bin_and_uniform():
    inf = data.info("digits")
    w = data.bin_width(inf)
    assert w == pytest.approx(2 / 17) and data.bin_width("patches") == pytest.approx(2 / 256)
    assert data.bin_width("moons") is None
    x = data.load("digits", "train")
    xd = np.asarray(data.dequantize(jax.random.key(0), x, inf))
    assert xd.shape == x.shape
    assert np.all(np.abs(xd - x) <= w / 2 + 1e-6)
    assert xd.min() >= -1 and xd.max() <= 1
    np.testing.assert_array_equal(data.to_raw(xd, inf), data.to_raw(x, inf))  # same bin
    # offset within the bin is U(-w/2, w/2): mean 0, variance w^2/12 (n = 76800; 5 sigma)
    u = (xd - x).ravel() / w
    n = u.size
    assert abs(u.mean()) < 5 * math.sqrt(1 / 12 / n)
    assert abs(u.var() - 1 / 12) < 5 * math.sqrt(1 / 180 / n)
    # continuous data unchanged
    y = data.load("moons", "test")
    np.testing.assert_array_equal(np.asarray(data.dequantize(jax.random.key(0), y, "moons")), y)


@pytest.mark.parametrize("levels", [2, 17, 256])
def test_bits_per_dim_bookkeeping(levels):
    # The uniform density on [-1, 1]^D, log p = -D log 2, gives exactly log2(levels) bits/dim;
    # equivalently the L^D bins of volume (2/L)^D tile the cube.
    D = 64
    assert data.log_prob_to_bits_per_dim(-D * math.log(2.0), D, levels) == pytest.approx(math.log2(levels), abs=1e-12)
    assert levels * data.bin_width(levels) == pytest.approx(2.0)
    # Continuous data: no bin volume term.
    assert data.log_prob_to_bits_per_dim(-D * math.log(2.0), D, None) == pytest.approx(1.0)


def test_unknown_name_lists_datasets():
    with pytest.raises(data.UnknownDatasetError) as e:
        data.load("nosuchset")
    msg = str(e.value)
    for n in data.names():
        assert n in msg
    assert isinstance(e.value, ValueError)
    with pytest.raises(data.UnknownDatasetError):
        data.info("nosuchset")
    with pytest.raises(data.DataError, match="split"):
        data.load("digits", "training")
    with pytest.raises(data.DataError, match="no labels"):
        data.labels("moons")


def test_missing_file(tmp_path):
    p = str(tmp_path / "missing.npy")
    with pytest.raises(data.DataFileNotFoundError, match="missing.npy"):
        data.load(p)
    with pytest.raises(FileNotFoundError):
        data.info(p)


def test_user_npy_uint8_cifar_shape(tmp_path):
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(200, 32, 32, 3), dtype=np.uint8)
    p = str(tmp_path / "cifar.npy")
    np.save(p, raw)
    inf = data.info(p)
    assert inf["data_shape"] == (32, 32, 3) and inf["levels"] == 256 and inf["kind"] == "user"
    assert inf["sizes"] == {"train": 180, "validation": 10, "test": 10, "all": 200}
    parts = [data.load(p, s) for s in ("train", "validation", "test")]
    allx = data.load(p, "all")
    np.testing.assert_allclose(allx, (raw + 0.5) / 128 - 1, atol=1e-6)
    # disjoint, covering: the raw rows of the three splits are a permutation of all rows
    keys = lambda a: {r.tobytes() for r in data.to_raw(a, 256).reshape(len(a), -1).astype(np.uint8)}
    ks = [keys(a) for a in parts]
    assert sum(len(k) for k in ks) == 200 and len(ks[0] | ks[1] | ks[2]) == 200
    # channel-first arrays are transposed to channel-last
    np.save(p2 := str(tmp_path / "cf.npy"), np.transpose(raw, (0, 3, 1, 2)))
    np.testing.assert_array_equal(data.load(p2, "all"), allx)


def test_user_npz_keys_and_floats(tmp_path):
    rng = np.random.default_rng(1)
    tr = rng.integers(0, 256, (100, 4, 4), dtype=np.uint8)
    te = rng.integers(0, 256, (20, 4, 4), dtype=np.uint8)
    p = str(tmp_path / "d.npz")
    np.savez(p, x_train=tr, x_test=te)
    assert data.load(p, "test").shape == (20, 4, 4, 1)
    assert data.load(p, "train").shape[0] + data.load(p, "validation").shape[0] == 100
    np.testing.assert_allclose(data.load(p, "test")[..., 0], (te + 0.5) / 128 - 1, atol=1e-6)
    # float vectors in [-1, 1] under key "x": continuous unless levels given
    f = rng.uniform(-1, 1, (60, 5)).astype(np.float32)
    p2 = str(tmp_path / "f.npz")
    np.savez(p2, other=np.zeros(3), x=f)
    inf = data.info(p2)
    assert inf["levels"] is None and inf["data_shape"] == (5,)
    np.testing.assert_array_equal(np.sort(data.load(p2, "all"), 0), np.sort(f, 0))
    assert data.info(p2, levels=17)["levels"] == 17
    # floats outside [-1, 1] are refused with the range in the message
    np.save(p3 := str(tmp_path / "bad.npy"), f * 3)
    with pytest.raises(data.DataError, match=r"\[-1, 1\]"):
        data.load(p3)
    np.save(p4 := str(tmp_path / "flat.npy"), np.zeros(10))
    with pytest.raises(data.DataError, match="shape"):
        data.load(p4)
    np.save(p5 := str(tmp_path / "big.npy"), np.full((10, 3), 1000, np.int32))
    with pytest.raises(data.DataError, match="levels"):
        data.load(p5)


def test_user_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(2)
    imgs = rng.integers(0, 256, (12, 6, 5, 3), dtype=np.uint8)
    d = tmp_path / "imgs"
    d.mkdir()
    for i, im in enumerate(imgs):
        Image.fromarray(im).save(d / f"{i:02d}.png")
    (d / "notes.txt").write_text("ignored")
    x = data.load(str(d), "all")
    np.testing.assert_allclose(x, (imgs + 0.5) / 128 - 1, atol=1e-6)
    assert data.info(str(d))["data_shape"] == (6, 5, 3)
    # grey folder
    g = tmp_path / "grey"
    g.mkdir()
    for i in range(5):
        Image.fromarray(imgs[i, ..., 0]).save(g / f"{i}.png")
    assert data.info(str(g))["data_shape"] == (6, 5, 1)
    # empty folder, mismatched sizes
    e = tmp_path / "empty"
    e.mkdir()
    with pytest.raises(data.DataError, match="no images"):
        data.load(str(e))
    Image.fromarray(np.zeros((7, 7, 3), np.uint8)).save(d / "99.png")
    with pytest.raises(data.DataError, match="99.png"):
        data.load(str(d))
    assert os.path.exists(d / "99.png")
