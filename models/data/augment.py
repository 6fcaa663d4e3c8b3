"""Batch-level image augmentation on in-memory tensors: cutout (DeVries and Taylor 2017), the
standard CIFAR pad-and-crop + horizontal flip, and batch augmentation (Hoffer et al. 2019).

    from models.data.augment import BatchAugment, cutout
    x = cutout(x, size=16, centres=torch.tensor([[0, 31], ...]))   # (N, C, H, W), one centre per image
    fit(model, data, cfg, batch_transform=BatchAugment(copies=4, cutout=16))   # models/training/loop.py
    sysdl study cutout --show            # a figure of two images before and after cutout

Everything works on whole batches (N, C, H, W) with index arithmetic, no per-image Python loop:
the batch-augmented batches here reach 64 x 32 = 2,048 images. Randomness comes only from the
generator passed in (``fit`` seeds one per epoch), so runs are reproducible and resumable.

Conventions. Images are already normalised (models/data/datasets.py, models/data/cifar10.py), so the zeros that
cutout writes and the zero padding of the crop are the data set's mean colour, as in DeVries and
Taylor's code, which applies cutout after normalisation. A cutout square of side s centred at
(cy, cx) covers rows cy - s//2 .. cy - s//2 + s - 1 (and the same for columns), clipped to the
image: the centre is drawn uniformly over the whole image, so squares near a border are cut off.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def cutout_mask(height: int, width: int, size: int, centres: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool, True inside each image's square of side ``size`` at ``centres`` (N, 2) =
    (row, column), clipped to the image."""
    if size < 1:
        raise ValueError(f"the cutout square's side must be >= 1 pixel, got {size}")
    first = centres.long() - size // 2                                       # (N, 2) top-left corners
    rows = torch.arange(height, device=centres.device)                       # (H,)
    cols = torch.arange(width, device=centres.device)                        # (W,)
    in_rows = (rows >= first[:, :1]) & (rows < first[:, :1] + size)          # (N, H)
    in_cols = (cols >= first[:, 1:]) & (cols < first[:, 1:] + size)          # (N, W)
    return in_rows[:, :, None] & in_cols[:, None, :]                         # (N, H, W)


def cutout(x: torch.Tensor, size: int, centres: torch.Tensor) -> torch.Tensor:
    """``x`` (N, C, H, W) with each image's (clipped) square zeroed in every channel; a new tensor."""
    if centres.shape != (len(x), 2):
        raise ValueError(f"cutout needs one (row, column) centre per image: centres of shape ({len(x)}, 2), "
                         f"got {tuple(centres.shape)}")
    mask = cutout_mask(x.shape[-2], x.shape[-1], size, centres)
    return x.masked_fill(mask[:, None], 0.0)


def random_centres(n: int, height: int, width: int, generator: torch.Generator | None,
                   device=None) -> torch.Tensor:
    """(n, 2) centres drawn uniformly over all H x W pixels (DeVries and Taylor: the square may
    then reach past the border)."""
    rows = torch.randint(0, height, (n,), generator=generator, device=device)
    cols = torch.randint(0, width, (n,), generator=generator, device=device)
    return torch.stack([rows, cols], dim=1)


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator | None) -> torch.Tensor:
    """Pad each image by ``pad`` zeros on every side and crop an H x W window at a random offset
    (per image, uniform over the 2 pad + 1 positions on each axis)."""
    if pad == 0:
        return x
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))                   # (N, C, H+2p, W+2p)
    top = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=x.device)
    left = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=x.device)
    rows = top[:, None] + torch.arange(h, device=x.device)                        # (N, H)
    cols = left[:, None] + torch.arange(w, device=x.device)                       # (N, W)
    images = torch.arange(n, device=x.device)[:, None, None, None]
    channels = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[images, channels, rows[:, None, :, None], cols[:, None, None, :]]   # (N, C, H, W)


def random_flip(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Each image mirrored left-right with probability 1/2."""
    flip = torch.rand(len(x), generator=generator, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


@dataclass(frozen=True)
class BatchAugment:
    """``fit``'s batch_transform: every image of the batch appears ``copies`` times (M, Hoffer et
    al. 2019), each copy with its own pad-``pad`` random crop, horizontal flip and cutout of side
    ``cutout`` (0: none), so a batch of B images trains on M x B examples; labels are repeated to
    match. copies=1 with cutout=0 is the standard CIFAR augmentation (the baseline)."""
    copies: int = 1                # M: augmented copies of each image in its batch
    pad: int = 4                   # pixels of zero padding before the random crop (0: no crop)
    flip: bool = True              # random horizontal flips
    cutout: int = 0                # side of the cutout square in pixels (0: no cutout)

    def __post_init__(self):
        if self.copies < 1 or self.pad < 0 or self.cutout < 0:
            raise ValueError(f"batch augmentation needs copies >= 1, pad >= 0 and cutout >= 0 pixels; got "
                             f"copies={self.copies}, pad={self.pad}, cutout={self.cutout}")

    def __call__(self, x: torch.Tensor, y: torch.Tensor,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        # Copies of one image sit next to each other: (B, ...) -> (M*B, ...), image i at rows i*M .. i*M+M-1.
        x, y = x.repeat_interleave(self.copies, dim=0), y.repeat_interleave(self.copies, dim=0)
        x = random_crop(x, self.pad, generator)
        if self.flip:
            x = random_flip(x, generator)
        if self.cutout:
            x = cutout(x, self.cutout, random_centres(len(x), x.shape[-2], x.shape[-1], generator, x.device))
        return x, y

    def to_dict(self) -> dict:
        return {"copies": self.copies, "pad": self.pad, "flip": self.flip, "cutout": self.cutout}


def show_cutout(images: torch.Tensor, size: int, path, seed: int = 0, mean=None, std=None,
                title: str = ""):
    """A figure: the images (N, C, H, W, normalised) in the top row, the same after cutout below.
    ``mean`` / ``std`` (per channel) undo the normalisation for display."""
    from models.shared.figures import new_figure, save
    g = torch.Generator().manual_seed(seed)
    after = cutout(images, size, random_centres(len(images), images.shape[-2], images.shape[-1], g))
    fig, axes = new_figure((2.2 * len(images), 4.6), 2, len(images))
    axes = axes.reshape(2, len(images))
    for row, (batch, label) in enumerate(((images, "original"), (after, f"cutout {size}x{size}"))):
        for col, image in enumerate(batch):
            axes[row, col].imshow(displayable(image, mean, std), cmap="gray" if image.shape[0] == 1 else None)
            axes[row, col].set(xticks=[], yticks=[], title=label)
    fig.suptitle(title or "cutout (DeVries and Taylor 2017)")
    return save(fig, path)


def displayable(image: torch.Tensor, mean=None, std=None):
    """(C, H, W) normalised -> (H, W, C) or (H, W) in [0, 1] for imshow."""
    c = image.shape[0]
    if mean is not None:
        image = image * torch.as_tensor(std).reshape(-1, 1, 1) + torch.as_tensor(mean).reshape(-1, 1, 1)
    else:                          # no statistics given: stretch to [0, 1]
        image = (image - image.min()) / (image.max() - image.min()).clamp_min(1e-12)
    image = image.clamp(0, 1)
    return image[0].numpy() if c == 1 else image.permute(1, 2, 0).numpy()
