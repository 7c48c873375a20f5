"""A picture of the grid: |field| as a log-scaled viridis heatmap, memory centres marked, as PNG.

The PNG is written here with zlib and struct (8-bit RGB, no filtering), so mem8 needs no imaging
library.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]  # (height, width, 3) RGB

# Anchors of matplotlib's viridis at 0, 1/8, .., 1: perceptually ordered, readable in grey.
VIRIDIS = np.array(
    [
        (68, 1, 84),
        (71, 44, 122),
        (59, 81, 139),
        (44, 113, 142),
        (33, 144, 141),
        (39, 173, 129),
        (92, 200, 99),
        (170, 220, 50),
        (253, 231, 37),
    ],
    np.float64,
)
MARKER = (255, 32, 32)  # red stands out against every viridis colour
DYNAMIC_RANGE = 1e3  # the log scale spans three decades below the peak
READABLE_SIDE = 768  # small grids are scaled up to about this many pixels


def default_scale(grid_size: int) -> int:
    return max(1, round(READABLE_SIDE / grid_size))


def log_scaled(magnitude: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """|field| mapped to [0, 1] on a log scale, so that faint memories show beside strong ones."""
    peak = float(np.max(magnitude, initial=0.0))
    if peak <= 0.0:
        return np.zeros(magnitude.shape, np.float64)
    relative = np.asarray(magnitude, np.float64) / peak
    scaled: npt.NDArray[np.float64] = np.log1p(DYNAMIC_RANGE * relative) / math.log1p(DYNAMIC_RANGE)
    return scaled


def coloured(levels: npt.NDArray[np.float64]) -> Image:
    """Levels in [0, 1] to RGB, interpolating linearly between the viridis anchors."""
    position = np.clip(levels, 0.0, 1.0) * (len(VIRIDIS) - 1)
    below = np.minimum(position.astype(np.intp), len(VIRIDIS) - 2)
    share = (position - below)[..., None]
    rgb = VIRIDIS[below] * (1.0 - share) + VIRIDIS[below + 1] * share
    image: Image = np.rint(rgb).astype(np.uint8)
    return image


def centre_pixel(x: float, y: float, scale: int) -> tuple[int, int]:
    """(row, column) of the pixel at grid position (x = column, y = row): cell j spans pixels
    [j * scale, (j + 1) * scale) and position j is that cell's centre."""
    return math.floor(y * scale + scale / 2), math.floor(x * scale + scale / 2)


def mark(image: Image, centres: Iterable[tuple[float, float]], scale: int) -> None:
    """Draws a small cross at each (x, y) centre, in place; crosses may run off the edge."""
    height, width, _ = image.shape
    arm = max(3, 2 * scale)
    for x, y in centres:
        row, col = centre_pixel(x, y, scale)
        if 0 <= row < height:
            image[row, max(0, col - arm) : max(0, col + arm + 1)] = MARKER
        if 0 <= col < width:
            image[max(0, row - arm) : max(0, row + arm + 1), col] = MARKER


def heatmap(
    magnitude: npt.NDArray[np.floating], centres: Iterable[tuple[float, float]], scale: int
) -> Image:
    """The grid's |field| as an RGB image, each cell `scale` pixels square, centres marked."""
    if scale < 1:
        raise ValueError(f"scale must be at least 1, not {scale}")
    image = coloured(log_scaled(magnitude))
    image = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
    mark(image, centres, scale)
    return image


def png(image: Image) -> bytes:
    """An 8-bit RGB PNG of the image: signature, IHDR, one IDAT, IEND."""
    height, width, _ = image.shape
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = np.zeros((height, 1 + 3 * width), np.uint8)  # each row starts with filter type 0
    rows[:, 1:] = image.reshape(height, 3 * width)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(rows.tobytes(), 9)),
            _chunk(b"IEND", b""),
        )
    )


def _chunk(kind: bytes, body: bytes) -> bytes:
    checksum = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", checksum)
