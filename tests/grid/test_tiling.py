"""Tiles, their halos and their fields: a tiled field steps bit for bit like the whole grid."""

from __future__ import annotations

import numpy as np
import pytest

from mem8.grid import kernels, tiling
from mem8.grid.dynamics import C2DT2, FIELD_DECAY, GAMMA_DT
from mem8.grid.kernels import CUTOFF_SIGMAS, FIELD_DTYPE
from mem8.grid.tiling import Tile, TileField

SIGMA = 1.5
PACKETS = [(3.2, 4.7, 1.0, 0, 0.3), (7.9, 8.1, 1.4, 2, 1.1), (12.5, 2.2, 0.8, 1, 2.0)]


def test_tiles_cover_the_grid_row_major() -> None:
    found = tiling.tiles(16, 2)
    assert found == [Tile(0, 0, 8, 8), Tile(0, 8, 8, 8), Tile(8, 0, 8, 8), Tile(8, 8, 8, 8)]
    assert found[1].holds(x=8.0, y=7.9) and not found[1].holds(x=7.9, y=7.9)


def test_a_packet_reaches_a_tile_within_the_imprint_cutoff() -> None:
    tile = Tile(0, 8, 8, 8)
    reach = tiling.reach(SIGMA)
    assert reach == CUTOFF_SIGMAS * SIGMA
    assert tile.touches(8.0 - reach + 0.01, 3.0, reach)
    assert not tile.touches(8.0 - reach - 0.01, 3.0, reach)


def test_neighbours_are_none_at_the_border() -> None:
    assert tiling.neighbours(0, 3) == (None, 3, None, 1)
    assert tiling.neighbours(4, 3) == (1, 7, 3, 5)
    assert tiling.neighbours(8, 3) == (5, None, 7, None)


def test_the_halo_is_the_neighbours_facing_edges() -> None:
    field = TileField(Tile(0, 0, 2, 3), SIGMA)
    field.current[...] = np.arange(6).reshape(2, 3)
    edges = field.edges()
    assert edges.top.tolist() == [0, 1, 2] and edges.bottom.tolist() == [3, 4, 5]
    assert edges.left.tolist() == [0, 3] and edges.right.tolist() == [2, 5]


def whole_and_tiled(per_side: int) -> tuple[TileField, list[TileField]]:
    size = 16
    whole = TileField(Tile(0, 0, size, size), SIGMA)
    parts = [TileField(tile, SIGMA) for tile in tiling.tiles(size, per_side)]
    for field in [whole, *parts]:
        for x, y, amplitude, band, phase in PACKETS:
            field.imprint(x, y, amplitude, band, phase)
        field.excite(6.0, 6.0)
    return whole, parts


def step_tiled(parts: list[TileField], per_side: int) -> None:
    edges = [part.edges() for part in parts]
    blank = np.zeros(parts[0].tile.width, FIELD_DTYPE)
    for i, part in enumerate(parts):
        north, south, west, east = tiling.neighbours(i, per_side)
        part.step(
            tiling.Edges(
                blank if north is None else edges[north].bottom,
                blank if south is None else edges[south].top,
                blank if west is None else edges[west].right,
                blank if east is None else edges[east].left,
            ),
            FIELD_DECAY,
        )


@pytest.mark.parametrize("per_side", [2, 4])
def test_a_tiled_field_steps_bit_for_bit_like_the_whole(per_side: int) -> None:
    whole, parts = whole_and_tiled(per_side)
    blank = np.zeros(16, FIELD_DTYPE)
    for _ in range(5):
        whole.step(tiling.Edges(blank, blank, blank, blank), FIELD_DECAY)
        step_tiled(parts, per_side)
    current = tiling.joined([p.saved()[0] for p in parts], 16, per_side)
    previous = tiling.joined([p.saved()[1] for p in parts], 16, per_side)
    assert current.tobytes() == whole.current.tobytes()
    assert previous.tobytes() == whole.previous.tobytes()


def test_a_step_is_the_damped_leapfrog_then_the_fading() -> None:
    field, _ = whole_and_tiled(2)
    before, earlier = field.current.copy(), field.previous.copy()
    blank = np.zeros(16, FIELD_DTYPE)
    field.step(tiling.Edges(blank, blank, blank, blank), FIELD_DECAY)
    expected = kernels.propagate(kernels.pad_with_halo(before), earlier, C2DT2, GAMMA_DT)
    kernels.decay(expected, FIELD_DECAY)
    kernels.decay(before, FIELD_DECAY)
    assert field.current.tobytes() == expected.tobytes()
    assert field.previous.tobytes() == before.tobytes()


def test_a_saved_field_restores_exactly() -> None:
    field, _ = whole_and_tiled(2)
    copy = TileField(field.tile, SIGMA)
    copy.restore(*field.saved())
    assert copy.saved() == field.saved()
    assert copy.activation().field.tobytes() == field.current.tobytes()
