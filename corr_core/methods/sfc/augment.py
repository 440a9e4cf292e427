"""MoCo v2's strong augmentations for SFC's semantic branch, drawn from a numpy generator.

Random resized crop (area ``scale``), colour jitter (brightness, contrast, saturation 0.4, hue
0.1, in random order) with probability 0.8, greyscale 0.2, Gaussian blur (sigma 0.1-2, kernel
about a tenth of the side) 0.5, horizontal flip 0.5. All randomness comes from the generator,
so a batch iterator holding it resumes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from corr_core.data.transforms import crop_resize, random_crop_box


@dataclass(frozen=True)
class StrongAugment:
    """MoCo v2's view augmentation.

    Attributes:
        size: side of the output view.
        scale: crop area as a fraction of the image, ``(min, max)`` (MoCo v2: 0.2-1).
        jitter: colour-jitter strength (brightness/contrast/saturation; hue is a quarter of it).
        p_jitter, p_grey, p_blur, p_flip: probabilities of each step.
    """

    size: int = 96
    scale: tuple[float, float] = (0.2, 1.0)
    jitter: float = 0.4
    p_jitter: float = 0.8
    p_grey: float = 0.2
    p_blur: float = 0.5
    p_flip: float = 0.5

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``(H, W, 3) uint8`` RGB -> ``(size, size, 3) uint8`` augmented view."""
        h, w = image.shape[:2]
        view = crop_resize(image, random_crop_box(h, w, rng, self.scale), self.size).astype(np.float32) / 255.0
        if rng.random() < self.p_jitter:
            view = self._jitter(view, rng)
        if rng.random() < self.p_grey:
            view = np.repeat(cv2.cvtColor(view, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
        if rng.random() < self.p_blur:
            sigma = float(rng.uniform(0.1, 2.0))
            k = max(3, int(self.size * 0.1) | 1)
            view = cv2.GaussianBlur(view, (k, k), sigma)
        if rng.random() < self.p_flip:
            view = view[:, ::-1]
        return np.ascontiguousarray(np.clip(view * 255.0 + 0.5, 0, 255).astype(np.uint8))

    def _jitter(self, view: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        s = self.jitter
        factors = rng.uniform(max(0.0, 1 - s), 1 + s, size=3)
        hue = float(rng.uniform(-s / 4, s / 4))
        for op in rng.permutation(4):
            if op == 0:
                view = view * factors[0]
            elif op == 1:
                mean = float(cv2.cvtColor(np.clip(view, 0, 1), cv2.COLOR_RGB2GRAY).mean())
                view = (view - mean) * factors[1] + mean
            elif op == 2:
                grey = cv2.cvtColor(np.clip(view, 0, 1), cv2.COLOR_RGB2GRAY)[..., None]
                view = grey + (view - grey) * factors[2]
            else:
                hsv = cv2.cvtColor(np.clip(view, 0, 1).astype(np.float32), cv2.COLOR_RGB2HSV)
                hsv[..., 0] = (hsv[..., 0] + hue * 360.0) % 360.0
                view = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
            view = np.clip(view, 0, 1).astype(np.float32)
        return view
