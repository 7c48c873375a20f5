"""The wave memory's numerics: numba kernels over numpy arrays, no I/O, no actors, no clock."""
