"""Real images from a folder of PNG/JPEG files, resized and centre-cropped to a square.

Files are read in sorted order; if the folder has sub-folders, each sub-folder is a class
(labels follow the sorted sub-folder names, like an ImageFolder). Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from visgen._checks import check_positive

__all__ = ["IMAGE_EXTENSIONS", "load_image_folder", "resize_center_crop"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Scale so the shorter side is ``size`` (bicubic), then crop the central size × size."""
    w, h = image.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    return image.crop((left, top, left + size, top + size))


def load_image_folder(root, size: int = 32) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Images (N, 3, size, size) in [−1, 1], labels (N,) and class names from a folder.

    Without sub-folders every label is 0 and the class list is ``[folder name]``.
    """
    root = Path(root)
    check_positive(size, "size", integer=True)
    if not root.is_dir():
        raise ValueError(f"root must be an existing folder, got {str(root)!r}")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    groups = [(d.name, d) for d in subdirs] if subdirs else [(root.name, root)]
    images, labels = [], []
    for label, (_, folder) in enumerate(groups):
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            try:
                with Image.open(path) as im:
                    rgb = resize_center_crop(im.convert("RGB"), size)
            except (UnidentifiedImageError, OSError) as err:
                raise ValueError(f"cannot read image {str(path)!r}: {err}") from err
            images.append(np.asarray(rgb, dtype=np.float32))
            labels.append(label)
    if not images:
        raise ValueError(f"no {'/'.join(IMAGE_EXTENSIONS)} images found under {str(root)!r}")
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2) / 127.5 - 1.0
    return x.contiguous(), torch.tensor(labels), [name for name, _ in groups]
