import math

import numpy as np
import pytest
import torch
from PIL import Image

from visgen.data import (
    COLOURS,
    SHAPES,
    SIZES,
    TOY2D,
    get_dataset,
    load_digits,
    load_image_folder,
    make_shapes,
    toy2d,
)
from visgen.oracles import eight_gaussians


@pytest.mark.parametrize("name", sorted(TOY2D))
def test_toy2d_is_deterministic_and_standardised(name):
    a = toy2d(name, 4000, torch.Generator().manual_seed(0))
    b = toy2d(name, 4000, torch.Generator().manual_seed(0))
    c = toy2d(name, 4000, torch.Generator().manual_seed(1))
    assert a.shape == (4000, 2) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    # one network and schedule fit all of them: roughly centred, spread comparable to N(0, I)
    assert a.mean(0).abs().max() < 0.35
    assert ((a.std(0) > 0.6) & (a.std(0) < 1.6)).all()


def test_eight_gaussians_is_the_oracle():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(toy2d("eight_gaussians", 100, g1), eight_gaussians().sample(100, g2))


def test_toy2d_supports():
    g = torch.Generator().manual_seed(0)
    board = toy2d("checkerboard", 5000, g)
    cell = torch.floor(board + 2).long()
    assert ((cell >= 0) & (cell <= 3)).all() and ((cell.sum(1) % 2) == 0).all()
    rings = toy2d("rings", 6000, g).norm(dim=1)
    nearest = torch.tensor([0.8, 1.6, 2.4])[
        (rings[:, None] - torch.tensor([0.8, 1.6, 2.4])).abs().argmin(1)
    ]
    assert (rings - nearest).abs().std() < 0.1
    # ring masses ∝ radius: 1/6, 2/6, 3/6 (binomial standard errors ≈ 0.006)
    counts = torch.bincount((rings[:, None] - torch.tensor([0.8, 1.6, 2.4])).abs().argmin(1))
    assert torch.allclose(counts / 6000.0, torch.tensor([1, 2, 3]) / 6.0, atol=0.03)


def test_digits_split_and_range():
    xtr, ytr = load_digits("train")
    xte, yte = load_digits("test")
    xall, yall = load_digits("all")
    assert xtr.shape == (1400, 1, 8, 8) and xte.shape == (397, 1, 8, 8)
    assert torch.equal(torch.cat([xte, xtr]), xall) and torch.equal(torch.cat([yte, ytr]), yall)
    assert xall.min() == -1 and xall.max() == 1
    # pixels are (0..16)/8 − 1: multiples of 1/8
    assert torch.equal(xall * 8, torch.round(xall * 8))
    assert set(yte.tolist()) == set(range(10))
    x16, y16 = load_digits("test", 16)
    assert x16.shape == (397, 1, 16, 16) and torch.equal(y16, yte)
    assert x16.min() >= -1 and x16.max() <= 1
    # bilinear ×2 with half-pixel centres: average-pooling 2×2 returns a smoothed original
    pooled = torch.nn.functional.avg_pool2d(x16, 2)
    assert (pooled - xte).abs().mean() < 0.15
    with pytest.raises(ValueError, match="split"):
        load_digits("val")
    with pytest.raises(ValueError, match="size"):
        load_digits("train", 32)


@pytest.mark.parametrize("size", [16, 32])
def test_shapes_geometry_matches_labels(size):
    s = make_shapes(300, size, seed=5)
    assert s.images.shape == (300, 3, size, size)
    assert s.images.min() >= -1 and s.images.max() <= 1
    coverage = (
        (s.images + 1).amax(1)
        / 2
        / torch.tensor(list(COLOURS.values())).amax(1)[s.colour, None, None]
    )
    radius = torch.tensor(list(SIZES.values()))[s.size] * size
    # anti-aliased area = the exact area (circumradius r): π r², 2 r², 3√3/4 r², up to half a
    # sub-pixel (1/8 px with 4× supersampling) along the perimeter 2π r, 4√2 r, 3√3 r
    factor = torch.tensor([math.pi, 2.0, 3 * math.sqrt(3) / 4])[s.shape]
    perimeter = torch.tensor([2 * math.pi, 4 * math.sqrt(2), 3 * math.sqrt(3)])[s.shape] * radius
    area = coverage.sum((1, 2))
    assert ((area - factor * radius**2).abs() <= perimeter / 8).all()
    # centroid of the coverage = centre of the shape (also for the equilateral triangle)
    grid = (torch.arange(size) + 0.5) / size
    cx = (coverage * grid[None, None, :]).sum((1, 2)) / area
    cy = (coverage * grid[None, :, None]).sum((1, 2)) / area
    assert torch.allclose(torch.stack([cx, cy], 1), s.position, atol=0.25 / size)
    # the colour of the shape is the colour label
    pixel = (s.images + 1).flatten(2).amax(2) / 2
    palette = torch.tensor(list(COLOURS.values()))
    assert torch.equal(torch.cdist(pixel, palette).argmin(1), s.colour)
    assert torch.equal(s.label, s.shape * 4 + s.colour)


def test_shapes_are_deterministic_per_seed_and_captioned():
    a, b, c = make_shapes(50, 16, 1), make_shapes(50, 16, 1), make_shapes(50, 16, 2)
    assert torch.equal(a.images, b.images) and a.captions == b.captions
    assert not torch.equal(a.images, c.images)
    for i in range(50):
        cap = a.captions[i]
        assert SHAPES[a.shape[i]] in cap and list(COLOURS)[a.colour[i]] in cap
        assert cap.startswith(f"a {list(SIZES)[a.size[i]]} ")
        x, y = a.position[i].tolist()
        if y < 1 / 3:
            assert "top" in cap
        if y > 2 / 3:
            assert "bottom" in cap
    assert sorted(set(a.label.tolist())) == sorted(set(a.label.tolist()) & set(range(12)))


def _write(path, array, fmt):
    Image.fromarray(array).save(path, format=fmt)


def test_image_folder_resize_and_centre_crop(tmp_path):
    # 80×20 (w×h) image: left quarter red, middle half green, right quarter blue
    img = np.zeros((20, 80, 3), np.uint8)
    img[:, :20] = (255, 0, 0)
    img[:, 20:60] = (0, 255, 0)
    img[:, 60:] = (0, 0, 255)
    (tmp_path / "cats").mkdir()
    (tmp_path / "dogs").mkdir()
    _write(tmp_path / "cats" / "a.png", img, "PNG")
    _write(tmp_path / "dogs" / "b.jpg", img, "JPEG")
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    x, labels, classes = load_image_folder(tmp_path, size=8)
    assert x.shape == (2, 3, 8, 8) and classes == ["cats", "dogs"] and labels.tolist() == [0, 1]
    # resize to 32×8, crop the central 8 columns (source columns 30..50): all green
    assert torch.allclose(x[0], torch.tensor([-1.0, 1.0, -1.0])[:, None, None], atol=1e-6)
    assert torch.allclose(x[1], torch.tensor([-1.0, 1.0, -1.0])[:, None, None], atol=0.1)


def test_image_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="existing folder"):
        load_image_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="no .*images"):
        load_image_folder(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image"):
        load_image_folder(tmp_path)


def test_registry():
    d = get_dataset("digits")
    assert d.sample_shape == (1, 8, 8) and d.num_classes == 10 and d.is_image
    assert get_dataset("digits") is d  # cached
    e = get_dataset("eight_gaussians", "test")
    assert e.labels is not None and e.num_classes == 8 and not e.is_image
    assert get_dataset("moons").labels is None
    s = get_dataset("shapes16", "test")
    assert len(s) == 2000 and s.num_classes == 12
    with pytest.raises(ValueError, match="dataset"):
        get_dataset("cifar10")
