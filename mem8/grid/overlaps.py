"""Which memories overlap in place and phase: their packets interfere constructively, so they
become associated. A spatial hash per scope finds the neighbours of a new memory."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from mem8.grid import kernels
from mem8.scope import Scope

ASSOCIATION_FLOOR = 0.3  # interference below which two memories are not associated
MAX_ASSOCIATIONS = 8  # a new memory's strongest associations kept
CELL_SCAN = 64  # a saturated grid's cell: only its most recent memories are compared

Cell = tuple[int, int]  # a cell of the spatial hash: column, row


class _Cell:
    """The memories of one scope in one cell of the spatial hash: ids and (x, y, phase)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.spots = np.zeros((8, 3), np.float64)

    def add(self, memory_id: str, x: float, y: float, phase: float) -> None:
        n = len(self.ids)
        if n == len(self.spots):
            self.spots = np.concatenate([self.spots, np.zeros_like(self.spots)])
        self.spots[n] = x, y, phase
        self.ids.append(memory_id)

    def remove(self, memory_id: str) -> None:
        at = self.ids.index(memory_id)
        self.spots[at : len(self.ids) - 1] = self.spots[at + 1 : len(self.ids)]
        del self.ids[at]

    def recent(self) -> tuple[list[str], npt.NDArray[np.float64]]:
        """The CELL_SCAN most recent: a saturated cell is not compared with in full."""
        n = len(self.ids)
        first = max(0, n - CELL_SCAN)
        return self.ids[first:n], self.spots[first:n]


class Overlaps:
    """The spatial hash, of cells `reach` wide; a new memory keeps its MAX_ASSOCIATIONS
    strongest associations with the memories of its scope it overlaps."""

    def __init__(self, reach: float) -> None:
        self.reach = reach
        # By scope, then cell: a memory's scope is hashed once, its neighbourhood by integers.
        self.cells: dict[Scope, dict[Cell, _Cell]] = {}
        self.placed: dict[str, tuple[Scope, Cell]] = {}  # memory id -> its scope and cell

    def _cell(self, x: float, y: float) -> Cell:
        return math.floor(x / self.reach), math.floor(y / self.reach)

    def add(self, wire: dict[str, Any], scope: Scope) -> list[list[Any]]:
        """Places a memory of `scope`; its associations with the memories of its scope it
        overlaps."""
        x, y, phase = wire["x"], wire["y"], wire["phase"]
        cells = self.cells.setdefault(scope, {})
        col, row = self._cell(x, y)
        ids: list[str] = []
        spots = []
        for dc in (-1, 0, 1):
            for dr in (-1, 0, 1):
                cell = cells.get((col + dc, row + dr))
                if cell is not None:
                    cell_ids, cell_spots = cell.recent()
                    ids += cell_ids
                    spots.append(cell_spots)
        found = self._strongest(wire["id"], x, y, phase, ids, spots) if ids else []
        cell = cells.get((col, row))
        if cell is None:
            cell = cells[(col, row)] = _Cell()
        cell.add(wire["id"], x, y, phase)
        self.placed[wire["id"]] = (scope, (col, row))
        return found

    def _strongest(
        self,
        memory_id: str,
        x: float,
        y: float,
        phase: float,
        near: list[str],
        spots: list[npt.NDArray[np.float64]],
    ) -> list[list[Any]]:
        where = np.concatenate(spots) if len(spots) > 1 else spots[0]
        order, strengths = kernels.associations(
            where, x, y, phase, self.reach / 2, ASSOCIATION_FLOOR, MAX_ASSOCIATIONS
        )
        # Strongest first; equal strengths in the order they were placed.
        return [
            [memory_id, near[i], s] for i, s in zip(order.tolist(), strengths.tolist(), strict=True)
        ]

    def remove(self, memory_id: str) -> None:
        placed = self.placed.pop(memory_id, None)
        if placed is not None:
            scope, cell = placed
            self.cells[scope][cell].remove(memory_id)
