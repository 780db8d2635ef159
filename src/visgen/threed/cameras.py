r"""Cameras: intrinsics and extrinsics, look-at and orbits, pixel rays, Plücker ray maps, and the
relative camera encodings of novel-view diffusion.

A camera maps a world point X to pixels in two steps (Hartley & Zisserman, *Multiple View
Geometry*, §6.1): the extrinsics move X into the camera frame, X_c = Rᵀ (X − c), with the
camera-to-world rotation R (columns: the camera's right, down and forward axes in world
coordinates — the OpenCV convention) and the camera centre c; the intrinsics K then project,

.. math::
    \text{perspective: } (u, v, 1)^T ∝ K X_c, \qquad
    \text{orthographic: } (u, v, 1)^T = K (X_{c,x}, X_{c,y}, 1)^T,

with K = [[f_x, 0, c_x], [0, f_y, c_y], [0, 0, 1]] in pixels (pixel (i, j) has its centre at
u = j + ½, v = i + ½). :func:`look_at` builds R from an eye, a target and an up vector;
:func:`orbit` puts cameras on a sphere around a target, at given azimuths and elevations (world
z is up).

**Rays and Plücker coordinates.** The ray of pixel (u, v) has the unit direction
d = R K⁻¹ (u, v, 1)ᵀ / ‖·‖ and passes through c (perspective); an orthographic camera's rays are
parallel (d = the forward axis) and start on its image plane. A line is the pair (d, m) with
the moment m = o × d for any point o on it (Plücker 1865): m ⟂ d, m does not change when o
slides along the line, and a point X lies on it iff X × d = m. The per-pixel map (d, c × d) is
the camera conditioning of CAT3D (Gao et al. 2024, arXiv 2405.10314) and SEVA (Zhou et al.
2025, arXiv 2503.14489), computed in the frame of the first input camera
(:meth:`Cameras.relative_to`) with resolution-normalised intrinsics.

**Relative camera of Zero-1-to-3** (Liu et al. 2023, arXiv 2303.11328, §3.2): with camera
centres in spherical coordinates (polar angle θ from the up axis, azimuth φ, radius r) the
condition is (Δθ, sin Δφ, cos Δφ, Δr) from the input to the target camera
(:func:`zero123_pose`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from visgen._checks import check_positive, check_tensor

__all__ = [
    "Cameras",
    "intrinsics",
    "look_at",
    "orbit",
    "spherical",
    "zero123_pose",
]

_UP = (0.0, 0.0, 1.0)


def _vectors(x, name: str, dtype=None) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=dtype)
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    if t.shape[-1:] != (3,):
        raise ValueError(
            f"{name} must have 3 coordinates in its last dimension, got {tuple(t.shape)}"
        )
    check_tensor(t, name)
    return t


def look_at(eye, target=(0.0, 0.0, 0.0), up=_UP) -> torch.Tensor:
    """Camera-to-world matrices (..., 4, 4) of cameras at ``eye`` looking at ``target``.

    forward f = (target − eye)/‖·‖, right r = f × up/‖·‖, down = f × r (OpenCV axes: the image
    y axis points down, so ``up`` appears at the top of the picture). Raises if eye = target
    or if the viewing direction is parallel to ``up`` (the roll is then undefined).
    """
    eye = _vectors(eye, "eye")
    target = _vectors(target, "target", eye.dtype)
    up = _vectors(up, "up", eye.dtype)
    eye, target, up = torch.broadcast_tensors(eye, target, up)
    forward = target - eye
    dist = forward.norm(dim=-1, keepdim=True)
    if (dist <= 1e-9).any():
        raise ValueError("eye and target must differ: a camera at its target has no direction")
    forward = forward / dist
    up_norm = up.norm(dim=-1, keepdim=True)
    if (up_norm <= 1e-12).any():
        raise ValueError("up must be a non-zero vector")
    right = torch.linalg.cross(forward, up / up_norm, dim=-1)
    sin = right.norm(dim=-1, keepdim=True)
    if (sin <= 1e-6).any():
        raise ValueError(
            "up is parallel to the viewing direction (eye → target): the camera's roll is "
            "undefined; pass another up vector"
        )
    right = right / sin
    down = torch.linalg.cross(forward, right, dim=-1)
    c2w = torch.zeros(*eye.shape[:-1], 4, 4, dtype=eye.dtype)
    c2w[..., :3, 0], c2w[..., :3, 1], c2w[..., :3, 2] = right, down, forward
    c2w[..., :3, 3] = eye
    c2w[..., 3, 3] = 1.0
    return c2w


def intrinsics(size: int, fov: float = 40.0, *, orthographic_extent: float | None = None):
    """Pixel intrinsics K (3, 3) of a square ``size``-pixel image, principal point at its centre.

    Perspective: focal f = (size/2) / tan(fov/2) for a field of view ``fov`` in degrees.
    Orthographic (``orthographic_extent`` = e): f = size / e pixels per world unit, so the
    image spans e world units.
    """
    check_positive(size, "size", integer=True)
    if orthographic_extent is not None:
        check_positive(orthographic_extent, "orthographic_extent")
        f = size / orthographic_extent
    else:
        if not 0 < fov < 180:
            raise ValueError(f"fov must lie in (0, 180) degrees, got {fov!r}")
        f = (size / 2) / math.tan(math.radians(fov) / 2)
    return torch.tensor([[f, 0.0, size / 2], [0.0, f, size / 2], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Cameras:
    """A batch of B cameras of one image size.

    Attributes:
        c2w: camera-to-world matrices (B, 4, 4), rotation columns right, down, forward.
        K: pixel intrinsics (B, 3, 3) (see the module docstring).
        height, width: image size in pixels.
        orthographic: parallel projection (K's focal lengths are pixels per world unit).
    """

    c2w: torch.Tensor
    K: torch.Tensor
    height: int
    width: int
    orthographic: bool = False

    def __post_init__(self):
        check_positive(self.height, "height", integer=True)
        check_positive(self.width, "width", integer=True)
        c2w, K = self.c2w, self.K
        check_tensor(c2w, "c2w", min_dim=3)
        check_tensor(K, "K", min_dim=2)
        if c2w.dim() != 3 or c2w.shape[1:] != (4, 4):
            raise ValueError(f"c2w must have shape (B, 4, 4), got {tuple(c2w.shape)}")
        if K.dim() == 2:
            object.__setattr__(self, "K", K.to(c2w.dtype).expand(c2w.shape[0], 3, 3))
            K = self.K
        if K.shape != (c2w.shape[0], 3, 3):
            raise ValueError(
                f"K must have shape (3, 3) or ({c2w.shape[0]}, 3, 3), got {tuple(K.shape)}"
            )
        R = c2w[:, :3, :3]
        eye = torch.eye(3, dtype=c2w.dtype)
        if (R.transpose(1, 2) @ R - eye).abs().amax() > 1e-4 or (torch.linalg.det(R) <= 0).any():
            raise ValueError(
                "c2w must hold rotations (orthonormal, determinant +1) in [:3, :3]: degenerate "
                "or reflected camera axes"
            )
        bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=c2w.dtype)
        if (c2w[:, 3] != bottom).any():
            raise ValueError("c2w's last row must be (0, 0, 0, 1)")
        if (K[:, 0, 0] <= 0).any() or (K[:, 1, 1] <= 0).any():
            raise ValueError("K must have positive focal lengths K[0, 0] and K[1, 1]")
        if (K[:, 2] != torch.tensor([0.0, 0.0, 1.0], dtype=K.dtype)).any() or (
            K[:, 1, 0] != 0
        ).any():
            raise ValueError("K must be upper triangular with last row (0, 0, 1)")

    # --- basic properties -------------------------------------------------------------------
    def __len__(self) -> int:
        return self.c2w.shape[0]

    def __getitem__(self, index) -> Cameras:
        c2w, K = self.c2w[index], self.K[index]
        if c2w.dim() == 2:
            c2w, K = c2w[None], K[None]
        return Cameras(c2w, K, self.height, self.width, self.orthographic)

    def to(self, dtype: torch.dtype) -> Cameras:
        return Cameras(
            self.c2w.to(dtype), self.K.to(dtype), self.height, self.width, self.orthographic
        )

    @property
    def R(self) -> torch.Tensor:
        """Camera-to-world rotations (B, 3, 3)."""
        return self.c2w[:, :3, :3]

    @property
    def centers(self) -> torch.Tensor:
        """Camera centres c (B, 3) (an orthographic camera's image-plane origin)."""
        return self.c2w[:, :3, 3]

    @property
    def forward(self) -> torch.Tensor:
        """Viewing directions (B, 3)."""
        return self.c2w[:, :3, 2]

    @property
    def w2c(self) -> torch.Tensor:
        """World-to-camera matrices (B, 4, 4): [Rᵀ, −Rᵀ c]."""
        out = torch.zeros_like(self.c2w)
        Rt = self.R.transpose(1, 2)
        out[:, :3, :3] = Rt
        out[:, :3, 3] = -(Rt @ self.centers[..., None])[..., 0]
        out[:, 3, 3] = 1.0
        return out

    # --- projection and rays ----------------------------------------------------------------
    def to_camera(self, points: torch.Tensor) -> torch.Tensor:
        """World points (N, 3) or (B, N, 3) in each camera's frame, (B, N, 3)."""
        points = check_tensor(points, "points")
        if points.dim() == 2:
            points = points.expand(len(self), *points.shape)
        if points.dim() != 3 or points.shape[-1] != 3 or points.shape[0] != len(self):
            raise ValueError(
                f"points must have shape (N, 3) or ({len(self)}, N, 3), got {tuple(points.shape)}"
            )
        return (points - self.centers[:, None]) @ self.R

    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel coordinates (B, N, 2) = (u, v) and depths (B, N) of world points (N or B, N, 3).

        Perspective points must lie in front of the camera (depth > 0)."""
        xc = self.to_camera(points)
        depth = xc[..., 2]
        if self.orthographic:
            xy = xc[..., :2]
        else:
            if (depth <= 0).any():
                raise ValueError("points must lie in front of the camera (positive depth)")
            xy = xc[..., :2] / depth[..., None]
        K = self.K[:, None]
        uv = torch.stack(
            [K[..., 0, 0] * xy[..., 0] + K[..., 0, 1] * xy[..., 1] + K[..., 0, 2],
             K[..., 1, 1] * xy[..., 1] + K[..., 1, 2]], -1
        )  # fmt: skip
        return uv, depth

    def pixel_grid(self) -> torch.Tensor:
        """Pixel centres (H, W, 2) = (u, v) = (column + ½, row + ½)."""
        dtype = self.c2w.dtype
        v, u = torch.meshgrid(
            torch.arange(self.height, dtype=dtype) + 0.5,
            torch.arange(self.width, dtype=dtype) + 0.5,
            indexing="ij",
        )
        return torch.stack([u, v], -1)

    def rays(self, uv: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Ray origins and unit directions, each (B, H, W, 3), through the pixel centres (or
        through the pixel coordinates ``uv`` (..., 2), giving (B, ..., 3))."""
        uv = self.pixel_grid() if uv is None else check_tensor(uv, "uv")
        shape = uv.shape[:-1]
        uv = uv.reshape(-1, 2)
        K = self.K[:, None]
        y = (uv[None, :, 1] - K[..., 1, 2]) / K[..., 1, 1]
        x = (uv[None, :, 0] - K[..., 0, 2] - K[..., 0, 1] * y) / K[..., 0, 0]
        R, c = self.R[:, None], self.centers[:, None]
        if self.orthographic:
            origins = c + x[..., None] * R[..., 0] + y[..., None] * R[..., 1]
            dirs = self.forward[:, None].expand_as(origins)
        else:
            local = torch.stack([x, y, torch.ones_like(x)], -1)
            dirs = F.normalize((R @ local[..., None])[..., 0], dim=-1)
            origins = c.expand_as(dirs)
        return origins.reshape(len(self), *shape, 3), dirs.reshape(len(self), *shape, 3)

    def plucker(self) -> torch.Tensor:
        """Plücker ray map (B, 6, H, W): unit direction d and moment o × d of every pixel's ray."""
        origins, dirs = self.rays()
        moment = torch.linalg.cross(origins, dirs, dim=-1)
        return torch.cat([dirs, moment], -1).permute(0, 3, 1, 2)

    # --- relative poses and encodings -------------------------------------------------------
    def relative_to(self, reference: Cameras | int = 0) -> Cameras:
        """These cameras in the frame of ``reference`` (a camera index, or Cameras of length 1
        or B): c2w_rel = c2w_ref⁻¹ c2w, so the reference itself becomes the identity (SEVA /
        CAT3D express every camera in the first input camera's frame)."""
        ref = self[reference] if isinstance(reference, int) else reference
        if not isinstance(ref, Cameras) or len(ref) not in (1, len(self)):
            raise ValueError(f"reference must be an index or Cameras of length 1 or {len(self)}")
        return Cameras(ref.w2c @ self.c2w, self.K, self.height, self.width, self.orthographic)

    def normalized_K(self) -> torch.Tensor:
        """Resolution-independent intrinsics (B, 3, 3): rows of K divided by (W, H)."""
        scale = torch.tensor([self.width, self.height, 1.0], dtype=self.K.dtype)
        return self.K / scale[:, None]

    def as_vector(self) -> torch.Tensor:
        """(B, 16): the 3×4 camera-to-world matrix row by row, then normalised (f_x, f_y, c_x,
        c_y) — how multi-view data sets store cameras (:meth:`from_vector` inverts it)."""
        Kn = self.normalized_K()
        intr = torch.stack([Kn[:, 0, 0], Kn[:, 1, 1], Kn[:, 0, 2], Kn[:, 1, 2]], -1)
        return torch.cat([self.c2w[:, :3].reshape(len(self), 12), intr], -1)

    @staticmethod
    def from_vector(
        v: torch.Tensor, height: int, width: int, orthographic: bool = False
    ) -> Cameras:
        """Cameras from :meth:`as_vector`'s (B, 16) (any leading batch shape is flattened)."""
        v = check_tensor(v, "v")
        if v.shape[-1] != 16:
            raise ValueError(f"v must have 16 numbers per camera, got shape {tuple(v.shape)}")
        v = v.reshape(-1, 16)
        c2w = torch.zeros(v.shape[0], 4, 4, dtype=v.dtype)
        c2w[:, :3] = v[:, :12].reshape(-1, 3, 4)
        c2w[:, 3, 3] = 1.0
        K = torch.zeros(v.shape[0], 3, 3, dtype=v.dtype)
        K[:, 0, 0], K[:, 1, 1] = v[:, 12] * width, v[:, 13] * height
        K[:, 0, 2], K[:, 1, 2] = v[:, 14] * width, v[:, 15] * height
        K[:, 2, 2] = 1.0
        return Cameras(c2w, K, height, width, orthographic)


def orbit(
    azimuths,
    elevations=30.0,
    radius: float = 3.0,
    *,
    size: int = 16,
    fov: float = 40.0,
    target=(0.0, 0.0, 0.0),
    orthographic_extent: float | None = None,
) -> Cameras:
    """Cameras on a sphere of ``radius`` around ``target``, looking at it, z up.

    ``azimuths`` and ``elevations`` in degrees (broadcast against each other): the eye is
    target + r (cos e cos a, cos e sin a, sin e). MVDream's default orbit is 4 azimuths 90°
    apart at elevation 15° (arXiv 2308.16512, §3.3). ``orthographic_extent`` makes the cameras
    orthographic, the image spanning that many world units. The cameras take the dtype of
    floating-point ``azimuths`` (float64 for exact invariants), else the default dtype.
    """
    check_positive(radius, "radius")
    az = torch.as_tensor(azimuths)
    dtype = az.dtype if az.is_floating_point() else torch.get_default_dtype()
    az = az.to(dtype)
    el = torch.as_tensor(elevations, dtype=dtype)
    az, el = torch.broadcast_tensors(az.reshape(-1), el.reshape(-1))
    if (el.abs() >= 90).any():
        raise ValueError("elevations must lie in (-90, 90) degrees: a pole camera has no up vector")
    a, e = torch.deg2rad(az), torch.deg2rad(el)
    target = _vectors(target, "target", dtype)
    eye = target + radius * torch.stack([e.cos() * a.cos(), e.cos() * a.sin(), e.sin()], -1)
    K = intrinsics(size, fov, orthographic_extent=orthographic_extent).to(dtype)
    return Cameras(look_at(eye, target), K, size, size, orthographic_extent is not None)


def spherical(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(polar θ from +z, azimuth φ about z, radius r) of points (..., 3), angles in radians."""
    points = check_tensor(points, "points")
    r = points.norm(dim=-1)
    if (r <= 0).any():
        raise ValueError("points must not be the origin (no spherical angles)")
    polar = torch.atan2(points[..., :2].norm(dim=-1), points[..., 2])
    azimuth = torch.atan2(points[..., 1], points[..., 0])
    return polar, azimuth, r


def zero123_pose(source: Cameras, target: Cameras) -> torch.Tensor:
    """Zero-1-to-3's relative camera (B, 4) = (Δθ, sin Δφ, cos Δφ, Δr) from ``source`` to
    ``target`` camera centres (spherical coordinates about the origin, the object's centre)."""
    if len(source) not in (1, len(target)):
        raise ValueError(f"source must hold 1 or {len(target)} cameras, got {len(source)}")
    p0, a0, r0 = spherical(source.centers)
    p1, a1, r1 = spherical(target.centers)
    da = a1 - a0
    return torch.stack([p1 - p0, da.sin(), da.cos(), r1 - r0], -1)
