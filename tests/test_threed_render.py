"""The differentiable splat renderer (lecture 12): gradients = finite differences (float64),
compositing against a hand-computed oracle, and clear errors for bad splats."""

import pytest
import torch

from visgen.threed import (
    PALETTE,
    Cameras,
    SplatField,
    Splats,
    colors_per_view,
    cross_view_consistency,
    cube_face_index,
    cube_splats,
    orbit,
    orbit_colors,
    random_blobs,
    render,
)
from visgen.threed.datasets import palette_views, render_views


def _scene(dtype=torch.float64):
    g = torch.Generator().manual_seed(3)
    means = torch.tensor([[0.0, 0.0, 0.0], [0.3, -0.2, 0.25], [-0.25, 0.3, -0.3]], dtype=dtype)
    scales = (0.15 + 0.1 * torch.rand(3, 3, generator=g)).to(dtype)
    rot = torch.randn(3, 4, generator=g).to(dtype)
    colors = (torch.rand(3, 3, generator=g) * 2 - 1).to(dtype)
    opac = torch.tensor([0.6, 0.7, 0.5], dtype=dtype)
    return means, scales, rot, colors, opac


@pytest.mark.parametrize("orthographic", [False, True])
def test_render_gradients_match_finite_differences(orthographic):
    extent = 2.0 if orthographic else None
    cams = orbit([20.0, 130.0], [25.0, -10.0], 3.0, size=8, fov=40.0, orthographic_extent=extent)
    cams = cams.to(torch.float64)
    inputs = tuple(t.requires_grad_() for t in _scene())
    g = torch.Generator().manual_seed(0)
    w = [torch.randn(2, c, 8, 8, generator=g, dtype=torch.float64) for c in (3, 1, 1)]

    def f(means, scales, rot, colors, opac):
        # random projections of image, alpha and depth: the full gradient of each is checked
        out = render(Splats(means, scales, colors, opac, rot), cams, background=0.2)
        return tuple((o * wi).sum() for o, wi in zip((out.image, out.alpha, out.depth), w))

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_compositing_matches_the_hand_computed_sum():
    # two splats straight in front of an orthographic camera: closed-form alphas at the centre
    cams = orbit([0.0], [0.0], 3.0, size=5, orthographic_extent=2.0).to(torch.float64)
    means = torch.tensor([[0.5, 0.0, 0.0], [-0.5, 0.0, 0.0]], dtype=torch.float64)  # near, far
    scales = torch.full((2, 3), 0.2, dtype=torch.float64)
    colors = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    opac = torch.tensor([0.6, 0.8], dtype=torch.float64)
    out = render(Splats(means, scales, colors, opac), cams, background=-1.0, blur=0.0)
    # pixel (2, 2) is the image centre (u = v = 2.5): both splats sit exactly there
    a1, a2 = 0.6, 0.8
    expected = torch.tensor([a1 * 1 + (1 - a1) * a2 * 0 + (1 - a1) * (1 - a2) * -1,
                             (1 - a1) * (1 - a2) * -1,
                             (1 - a1) * a2 * 1 + (1 - a1) * (1 - a2) * -1], dtype=torch.float64)  # fmt: skip
    assert torch.allclose(out.image[0, :, 2, 2], expected, atol=1e-12)
    assert torch.allclose(
        out.alpha[0, 0, 2, 2], torch.tensor(1 - (1 - a1) * (1 - a2), dtype=torch.float64)
    )
    # front-to-back: swapping the depths swaps which colour dominates
    swapped = render(Splats(-means, scales, colors, opac), cams, background=-1.0, blur=0.0)
    assert swapped.image[0, 2, 2, 2] > swapped.image[0, 0, 2, 2]
    # a pixel's 2D Gaussian falls off as exp(−½ d²/s²) with s = 0.2 world units = 0.5 px
    edge = render(
        Splats(means[:1], scales[:1], colors[:1], opac[:1]), cams, background=0.0, blur=0.0
    )
    s_px = 0.2 * 5 / 2.0
    assert torch.allclose(
        edge.alpha[0, 0, 2, 3],
        torch.tensor(0.6 * torch.exp(torch.tensor(-0.5 / s_px**2)).item(), dtype=torch.float64),
    )


def test_cube_face_labels_and_occlusion():
    # rendering one-hot face features gives face labels: the camera on +x sees the +x face
    cams = orbit([0.0, 90.0, 180.0], [0.0, 0.0, 0.0], 3.0, size=16, fov=35.0)
    labels = torch.nn.functional.one_hot(cube_face_index(3), 6).float()
    out = render(cube_splats(labels[None].reshape(1, 6, 9, 6)[:, :, 0]), cams, background=0.0)
    centre = out.image[:, :, 8, 8].argmax(1)
    assert centre.tolist() == [0, 2, 1]  # +x, +y, −x: the far faces are hidden
    assert (out.alpha[:, 0, 8, 8] > 0.99).all() and out.alpha[:, 0, 0, 0].max() < 0.05


def test_colours_per_view_count_the_palette_colours_each_view_shows():
    # 15° around the diagonal views a view sees the top and one face of each side pair, so it
    # shows exactly the cube's distinct palette indices; a one-colour cube shows one colour
    g = torch.Generator().manual_seed(0)
    images, cams, idx = palette_views(40, g, spacing=90.0, jitter=15.0)
    flat = Cameras.from_vector(cams.reshape(-1, 16), 16, 16)
    distinct = torch.tensor([len(set(row.tolist())) for row in idx], dtype=torch.float)
    assert colors_per_view(images.flatten(0, 1), flat) == pytest.approx(float(distinct.mean()))
    one = render_views(PALETTE[torch.full((1, 6), 2)], flat[:4])
    assert colors_per_view(one, flat[:4]) == 1.0
    with pytest.raises(ValueError, match="cams"):
        colors_per_view(one, flat[:3])


def test_consistency_over_multicoloured_orbits_leaves_out_one_colour_cubes():
    # 8 orbits of one-colour cubes (consistent for free) and 8 palette orbits whose views 1 and
    # 3 come from other cubes (inconsistent): min_colors=2 scores the second group alone
    g = torch.Generator().manual_seed(1)
    images, cams, idx = palette_views(8, g, spacing=90.0, jitter=15.0)
    flat = Cameras.from_vector(cams.reshape(-1, 16), 16, 16)
    distinct = torch.tensor([len(set(row.tolist())) for row in idx])
    assert orbit_colors(images, flat).equal(distinct[:, None].expand(8, 4))
    for k in (1, 2, 3):
        assert cross_view_consistency(images, flat, min_colors=k) == 1.0
    mixed = images.clone()
    mixed[:, 1::2] = images.roll(1, 0)[:, 1::2]
    one = render_views(PALETTE[torch.arange(8)[:, None].expand(8, 6) % 6], flat)
    one = one.reshape(images.shape)
    both = torch.cat([one, mixed])
    both_cams = Cameras.from_vector(torch.cat([cams, cams]).reshape(-1, 16), 16, 16)
    assert orbit_colors(one, flat).eq(1).all()
    alone = cross_view_consistency(mixed, flat, min_colors=2)
    assert alone < 0.9
    assert cross_view_consistency(both, both_cams, min_colors=2) == pytest.approx(alone)
    assert cross_view_consistency(both, both_cams) > alone + 0.2
    with pytest.raises(ValueError, match="2\\+ colours"):
        cross_view_consistency(one, flat, min_colors=2)
    with pytest.raises(ValueError, match="min_colors"):
        cross_view_consistency(images, flat, min_colors=0)


def test_bad_splats_raise_naming_the_argument():
    means, scales, rot, colors, opac = _scene(torch.float32)
    with pytest.raises(ValueError, match="scales must be positive"):
        Splats(means, scales * 0, colors, opac)
    with pytest.raises(ValueError, match="opacities"):
        Splats(means, scales, colors, opac + 1)
    with pytest.raises(ValueError, match="rotations must be non-zero"):
        Splats(means, scales, colors, opac, rot * 0).covariances()
    with pytest.raises(ValueError, match="colors must describe"):
        Splats(means, scales, colors[:2], opac)
    cams = orbit([0.0, 90.0], 20.0)
    with pytest.raises(ValueError, match="scenes for 2 cameras"):
        render(random_blobs(3), cams)
    with pytest.raises(TypeError, match="splats must be a Splats"):
        render(means, cams)


def test_splat_field_keeps_splats_valid_and_learns_only_the_chosen_groups(gen):
    field = SplatField.random(10, gen, learn=("colors",))
    assert [n for n, p in field.named_parameters() if p.requires_grad] == ["colors"]
    with torch.no_grad():
        field.scales.fill_(-50.0)  # exp keeps them positive
        field.colors.fill_(100.0)
    sp = field.splats()
    assert (sp.scales > 0).all() and sp.colors.max() <= 1.0 and sp.opacities.max() < 0.99
    start = SplatField(cube_splats(torch.zeros(6, 3)))
    assert torch.allclose(start.splats().means, cube_splats(torch.zeros(6, 3)).means)
