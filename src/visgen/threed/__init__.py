"""3D generation (lecture 12): cameras and Plücker rays, Gaussian splats and a differentiable
renderer, procedural multi-view data, score distillation (SDS, VSD), novel-view and multi-view
diffusion, and the generate-then-reconstruct pipeline.

==========================  ===============================================================
module                      what
==========================  ===============================================================
:mod:`~.cameras`            intrinsics, look-at, orbits, rays, Plücker maps, relative poses
:mod:`~.splats`             3D Gaussians (means, covariances, colours, opacities), SplatField
:mod:`~.render`             the differentiable splat renderer (perspective, orthographic)
:mod:`~.scenes`             coloured cubes and blobs
:mod:`~.datasets`           multi-view data sets with known cameras
:mod:`~.multiview`          MultiViewDiT: MVDream, Zero-1-to-3 and SEVA-style conditioning
:mod:`~.training`           the multi-view flow-matching method and the trained assets
:mod:`~.distill`            SDS and VSD into splats
:mod:`~.reconstruct`        photometric fitting; novel views for generate-then-reconstruct
:mod:`~.metrics`            cross-view consistency, Janus score, saturation, PSNR
==========================  ===============================================================

Importing this package registers its network (``multiview_dit``), training method
(``multiview_fm``) and assets (``cube_prior16``, ``mvdream16``, ``zero123_16``, ``seva16``).
"""

from visgen.threed.cameras import Cameras, intrinsics, look_at, orbit, spherical, zero123_pose
from visgen.threed.distill import Distilled, lora_fake, score_distillation
from visgen.threed.metrics import (
    colors_per_view,
    cross_view_consistency,
    face_colors,
    face_labels,
    janus_score,
    orbit_colors,
    psnr,
    saturation,
)
from visgen.threed.multiview import MultiViewDiT, camera_features
from visgen.threed.reconstruct import fit_splats, novel_views
from visgen.threed.render import Rendered, render
from visgen.threed.scenes import (
    CANONICAL,
    FACES,
    PALETTE,
    blob_splats,
    cube_face_index,
    cube_splats,
    random_blobs,
    random_cube_colors,
)
from visgen.threed.splats import SplatField, Splats, covariance, quaternion_to_rotation
from visgen.threed.training import MultiViewFlowMatching

__all__ = [
    "CANONICAL",
    "FACES",
    "PALETTE",
    "Cameras",
    "Distilled",
    "MultiViewDiT",
    "MultiViewFlowMatching",
    "Rendered",
    "SplatField",
    "Splats",
    "blob_splats",
    "camera_features",
    "covariance",
    "colors_per_view",
    "cross_view_consistency",
    "cube_face_index",
    "cube_splats",
    "face_colors",
    "face_labels",
    "fit_splats",
    "intrinsics",
    "janus_score",
    "orbit_colors",
    "look_at",
    "lora_fake",
    "novel_views",
    "orbit",
    "psnr",
    "quaternion_to_rotation",
    "random_blobs",
    "random_cube_colors",
    "render",
    "saturation",
    "score_distillation",
    "spherical",
    "zero123_pose",
]
