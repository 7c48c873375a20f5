"""The grid split into tiles: which cells a tile holds, which packets reach it, which tiles
meet at its edges, and the wave field it steps with its neighbours' edges as halo."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from mem8.grid import kernels
from mem8.grid.dynamics import ACTIVATION_GAIN, C2DT2, EXCITATION, GAMMA_DT
from mem8.grid.kernels import CUTOFF_SIGMAS, FIELD_DTYPE, Field
from mem8.grid.placement import wavenumber
from mem8.grid.rescore import Activation


@dataclass(frozen=True)
class Tile:
    row0: int
    col0: int
    height: int
    width: int

    def holds(self, x: float, y: float) -> bool:
        return self.row0 <= y < self.row0 + self.height and self.col0 <= x < self.col0 + self.width

    def touches(self, x: float, y: float, radius: float) -> bool:
        return (
            self.row0 - radius <= y < self.row0 + self.height + radius
            and self.col0 - radius <= x < self.col0 + self.width + radius
        )


def reach(sigma: float) -> float:
    """How far from its centre a packet of width sigma writes (a tile farther away is not
    touched by it): kernels.CUTOFF_SIGMAS sigmas."""
    return CUTOFF_SIGMAS * sigma


def tiles(grid_size: int, per_side: int) -> list[Tile]:
    """per_side x per_side tiles, row-major."""
    edge = grid_size // per_side
    return [Tile(r * edge, c * edge, edge, edge) for r in range(per_side) for c in range(per_side)]


def joined(regions: Sequence[bytes], grid_size: int, per_side: int) -> Field:
    """The whole grid from its tiles' fields (complex64 bytes, tiles row-major, as
    TileField.saved gives them)."""
    edge = grid_size // per_side
    grid = np.zeros((grid_size, grid_size), FIELD_DTYPE)
    for index, region in enumerate(regions):
        row, col = divmod(index, per_side)
        tile = np.frombuffer(region, FIELD_DTYPE).reshape(edge, edge)
        grid[row * edge : (row + 1) * edge, col * edge : (col + 1) * edge] = tile
    return grid


class Sides(NamedTuple):
    """Something for each side of a tile: its neighbours, its edges, its halo."""

    north: int | None
    south: int | None
    west: int | None
    east: int | None


def neighbours(index: int, per_side: int) -> Sides:
    """The indexes of the tiles north, south, west and east of tile `index` (None at the
    grid's border)."""
    row, col = divmod(index, per_side)

    def at(r: int, c: int) -> int | None:
        return r * per_side + c if 0 <= r < per_side and 0 <= c < per_side else None

    return Sides(at(row - 1, col), at(row + 1, col), at(row, col - 1), at(row, col + 1))


class Edges(NamedTuple):
    """A tile's outermost cells, which its neighbours read as halo."""

    top: Field
    bottom: Field
    left: Field
    right: Field


class TileField:
    """One tile's wave field: the current and the previous step of the leapfrog scheme."""

    def __init__(self, tile: Tile, sigma: float) -> None:
        self.tile = tile
        self.sigma = sigma
        self.reach = reach(sigma)
        self.current: Field = np.zeros((tile.height, tile.width), FIELD_DTYPE)
        self.previous: Field = np.zeros_like(self.current)

    def imprint(self, x: float, y: float, amplitude: float, band: int, phase: float) -> None:
        """Adds a memory's packet, as a displacement at rest (to both steps)."""
        if self.tile.touches(x, y, self.reach):
            for target in (self.current, self.previous):
                self._packet(target, x, y, amplitude, wavenumber(band), phase)

    def excite(self, x: float, y: float) -> None:
        """A recall's packet through a memory's neighbourhood (spreading activation)."""
        if self.tile.touches(x, y, self.reach):
            self._packet(self.current, x, y, EXCITATION, 0.0, 0.0)

    def _packet(
        self, target: Field, x: float, y: float, amplitude: float, k: float, phase: float
    ) -> None:
        row0, col0 = self.tile.row0, self.tile.col0
        kernels.imprint(target, row0, col0, x, y, amplitude, self.sigma, k, phase)

    def edges(self) -> Edges:
        """Copies, not views: a step fades the arrays they were taken from."""
        field = self.current
        return Edges(field[0].copy(), field[-1].copy(), field[:, 0].copy(), field[:, -1].copy())

    def step(self, halo: Edges, decay: float) -> None:
        """One leapfrog step with the neighbours' facing edges as halo (`halo.top` is the
        bottom edge of the tile above, zeros at the grid's border), then both steps fade."""
        padded = kernels.pad_with_halo(
            self.current,
            north=halo.top.reshape(1, -1),
            south=halo.bottom.reshape(1, -1),
            west=halo.left.reshape(-1, 1),
            east=halo.right.reshape(-1, 1),
        )
        following = kernels.propagate(padded, self.previous, C2DT2, GAMMA_DT)
        self.previous = self.current
        self.current = following
        kernels.decay(self.current, decay)
        kernels.decay(self.previous, decay)

    def activation(self) -> Activation:
        """The field as it is now: each recall reads the latest step."""
        return Activation(self.current, (self.tile.row0, self.tile.col0), ACTIVATION_GAIN)

    def saved(self) -> tuple[bytes, bytes]:
        """The current and previous steps' bytes (row-major complex64)."""
        return self.current.tobytes(), self.previous.tobytes()

    def restore(self, current: bytes, previous: bytes) -> None:
        shape = self.current.shape
        self.current = np.frombuffer(current, FIELD_DTYPE).reshape(shape).copy()
        self.previous = np.frombuffer(previous, FIELD_DTYPE).reshape(shape).copy()
