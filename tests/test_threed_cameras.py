"""Cameras and Plücker rays (lecture 12) against exact invariants, in float64."""

import math

import pytest
import torch

from visgen.threed import Cameras, intrinsics, look_at, orbit, spherical, zero123_pose


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _cameras(orthographic=False):
    extent = 2.5 if orthographic else None
    return orbit([0.0, 37.0, 145.0, 260.0], [10.0, 30.0, -20.0, 55.0], 3.0, size=12, fov=45.0,
                 orthographic_extent=extent, target=(0.1, -0.2, 0.05))  # fmt: skip


def test_look_at_axes_and_orbit_targets():
    cams = _cameras()
    R = cams.R
    assert torch.allclose(R.transpose(1, 2) @ R, torch.eye(3).expand(4, 3, 3), atol=1e-12)
    assert torch.allclose(torch.linalg.det(R), torch.ones(4), atol=1e-12)
    # orbit cameras look at the target: it projects to the principal point
    uv, depth = cams.project(torch.tensor([[0.1, -0.2, 0.05]]))
    assert torch.allclose(uv, torch.full_like(uv, 6.0), atol=1e-12)
    assert torch.allclose(depth, torch.full_like(depth, 3.0), atol=1e-12)
    # the world's up axis points up in the image (OpenCV: image y grows downwards)
    up = cams.to_camera(torch.tensor([[0.1, -0.2, 1.05]]))
    assert (up[..., 1] < 0).all()
    # w2c inverts c2w
    assert torch.allclose(cams.w2c @ cams.c2w, torch.eye(4).expand(4, 4, 4), atol=1e-12)


@pytest.mark.parametrize("orthographic", [False, True])
def test_rays_reproject_and_plucker_invariants(orthographic, gen):
    cams = _cameras(orthographic)
    origins, dirs = cams.rays()
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(4, 12, 12), atol=1e-12)
    if not orthographic:  # every ray goes through the camera centre
        assert torch.allclose(origins, cams.centers[:, None, None].expand_as(origins))
    else:  # parallel rays along the viewing direction
        assert torch.allclose(dirs, cams.forward[:, None, None].expand_as(dirs))
    pl = cams.plucker()
    d, m = pl[:, :3], pl[:, 3:]
    assert pl.shape == (4, 6, 12, 12)
    assert (d * m).sum(1).abs().max() < 1e-12  # moment ⟂ direction
    # the moment does not change when the origin slides along the ray
    for lam in (-2.0, 0.7, 5.0):
        moved = torch.linalg.cross(origins + lam * dirs, dirs, dim=-1).permute(0, 3, 1, 2)
        assert torch.allclose(moved, m, atol=1e-12)
    # reprojection: a point on pixel p's ray projects back to p, and X × d = m for X on it
    X = origins + 2.5 * dirs  # (B, H, W, 3)
    uv, _ = cams.project(X.reshape(4, -1, 3))
    assert torch.allclose(uv, cams.pixel_grid().reshape(1, -1, 2).expand_as(uv), atol=1e-10)
    assert torch.allclose(torch.linalg.cross(X, dirs, dim=-1).permute(0, 3, 1, 2), m, atol=1e-12)
    # random world points: project, cast the ray of that pixel, the point lies on it
    pts = torch.randn(4, 50, 3, generator=gen) * 0.5
    uv, depth = cams.project(pts)
    o, dd = cams.rays(uv)  # (B, B·?) rays of every camera through these pixel coordinates
    o = o.reshape(4, 4, 50, 3)[torch.arange(4), torch.arange(4)]
    dd = dd.reshape(4, 4, 50, 3)[torch.arange(4), torch.arange(4)]
    assert torch.linalg.cross(pts - o, dd, dim=-1).norm(dim=-1).max() < 1e-10


def test_relative_poses_first_camera_is_identity_and_plucker_is_frame_covariant():
    cams = _cameras()
    rel = cams.relative_to(0)
    assert torch.allclose(rel.c2w[0], torch.eye(4), atol=1e-12)
    # relative poses do not depend on the world frame: rotate + translate the world
    angle = 0.7
    G = torch.eye(4)
    G[:3, :3] = torch.tensor(
        [[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]]
    )
    G[:3, 3] = torch.tensor([0.3, -1.0, 2.0])
    moved = Cameras(G @ cams.c2w, cams.K, cams.height, cams.width)
    assert torch.allclose(moved.relative_to(0).c2w, rel.c2w, atol=1e-12)
    # Plücker maps in the first camera's frame are invariant too; in world frames they are not
    assert torch.allclose(moved.relative_to(0).plucker(), rel.plucker(), atol=1e-12)
    assert not torch.allclose(moved.plucker(), cams.plucker(), atol=1e-3)
    # the vector form round-trips
    back = Cameras.from_vector(cams.as_vector(), 12, 12)
    assert torch.allclose(back.c2w, cams.c2w) and torch.allclose(back.K, cams.K)


def test_zero123_pose_and_spherical():
    cams = orbit([10.0, 100.0, -80.0], [20.0, 50.0, 20.0], 2.0)
    pose = zero123_pose(cams[0], cams)
    assert torch.allclose(pose[0], torch.tensor([0.0, 0.0, 1.0, 0.0]), atol=1e-12)
    polar, az, r = spherical(cams.centers)
    assert torch.allclose(polar, torch.deg2rad(torch.tensor([70.0, 40.0, 70.0])), atol=1e-12)
    assert torch.allclose(r, torch.full((3,), 2.0), atol=1e-12)
    assert torch.allclose(pose[1], torch.tensor([math.radians(-30), 1.0, 0.0, 0.0]), atol=1e-12)
    # Δφ = −90°: wrap-around is handled by sin/cos
    assert torch.allclose(pose[2, 1:3], torch.tensor([-1.0, 0.0]), atol=1e-12)


def test_bad_cameras_raise_naming_the_argument():
    with pytest.raises(ValueError, match="up is parallel"):
        look_at([0.0, 0.0, 3.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="eye and target"):
        look_at([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="elevations"):
        orbit([0.0], [90.0])
    with pytest.raises(ValueError, match="radius"):
        orbit([0.0], [10.0], 0.0)
    c2w = look_at([3.0, 0.0, 0.0])[None]
    K = intrinsics(8)
    with pytest.raises(ValueError, match="c2w"):
        Cameras(c2w * 2, K, 8, 8)  # scaled axes: not a rotation
    flipped = c2w.clone()
    flipped[:, :3, 0] *= -1
    with pytest.raises(ValueError, match="c2w"):
        Cameras(flipped, K, 8, 8)  # reflection
    bad_K = K.clone()
    bad_K[0, 0] = 0.0
    with pytest.raises(ValueError, match="K must have positive focal"):
        Cameras(c2w, bad_K, 8, 8)
    with pytest.raises(ValueError, match="fov"):
        intrinsics(8, 180.0)
    with pytest.raises(ValueError, match="positive depth"):
        Cameras(c2w, K, 8, 8).project(torch.tensor([[5.0, 0.0, 0.0]]))
