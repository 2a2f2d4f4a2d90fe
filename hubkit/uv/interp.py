"""Multilinear interpolation on a rectilinear grid in transformed axes, fast over whole fields.

The surface-UV lookup table (see :mod:`hubkit.uv`) is interpolated multilinearly in transformed
coordinates (``ln ozone``, ``cos sza`` ...), and in ``ln E`` for values that vary exponentially,
as in the AURORA surface-UV step [1]_ [2]_. Inside the cell
:math:`[x_{0,i_0}, x_{0,i_0+1}] \\times \\dots \\times [x_{N-1,i_{N-1}}, x_{N-1,i_{N-1}+1}]`
that holds a point, with the fractional positions :math:`w_d = (x_d - x_{d,i_d}) /
(x_{d,i_d+1} - x_{d,i_d})`, the interpolant is the tensor-product linear form [3]_

.. math:: f(x) = \\sum_{c \\in \\{0,1\\}^N} v_{i + c} \\prod_d w_d^{c_d} (1 - w_d)^{1 - c_d}.

It is evaluated here by collapsing one axis at a time, :math:`v \\leftarrow (1 - w_d)\\, v_{lo}
+ w_d\\, v_{hi}`, which halves the set of cell corners per axis (``2^N - 1`` linear blends instead
of ``2^N`` products of ``N`` weights), on points taken in cache-sized chunks by a pool of threads
(NumPy releases the GIL inside its loops). The blend form returns a node's value exactly when a
point sits on it (``w = 0`` or ``1``) and reproduces any function linear in each axis to
rounding.

References
----------
.. [1] Gai et al., "Tropospheric ozone and surface UV from the AURORA processing chain", Remote
   Sens. 13, 210, 2021. doi:10.3390/rs13020210
.. [2] Lipponen et al., "Surface UV index from satellite observations and a radiative-transfer
   lookup table", Atmosphere 11, 324, 2020. doi:10.3390/atmos11040324
.. [3] Weiser and Zarantonello, "A note on piecewise linear and multilinear table
   interpolation in many dimensions", Math. Comp. 50, 189-196, 1988.
   doi:10.1090/S0025-5718-1988-0917826-0
.. [4] Meador and Weaver, "Two-stream approximations to radiative transfer in planetary
   atmospheres: a unified description of existing methods and a new improvement", J. Atmos.
   Sci. 37, 630-643, 1980. doi:10.1175/1520-0469(1980)037<0630:TSATRT>2.0.CO;2
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from hubkit.errors import UVInputError

__all__ = [
    "AXIS_TRANSFORMS",
    "VALUE_TRANSFORMS",
    "Multilinear",
    "TableInterpolator",
    "multilinear",
    "table_interpolate",
]

#: Points per chunk: the ``2^N`` corner values of a chunk of a 7-D table (128 x 8192 x 8 bytes,
#: 1 MB) stay in a core's L2 cache while they are blended.
CHUNK_POINTS = 8192

#: Axes (the last, fastest-varying ones) whose cell corners are stored side by side for a
#: gather of 2^3 x 8 bytes = one cache line per point and outer corner; costs 8x the table.
INNER_AXES = 3

#: Fewer points than this are interpolated without building that side-by-side copy.
EXPAND_MIN_POINTS = 65536


def _identity(x):
    return x


def _cos_degrees(x):
    return np.cos(np.deg2rad(x))


def _sqrt_cos_degrees(x):
    """sqrt(cos x) of ``x`` in degrees (clipped at 0 for the rounding of cos 90°)."""
    return np.sqrt(np.clip(np.cos(np.deg2rad(x)), 0.0, None))


#: Cloud optical thickness that scales the ``log1p_20`` axis: ln(1 + cot / 20).
CLOUD_AXIS_SCALE = 20.0


def _log1p_cloud(x):
    """ln(1 + x / 20): the cloud axis on which ln UV is closest to linear.

    A plane-parallel cloud transmits ``T = (1 + a τ)^-p`` in the two-stream picture (``a =
    3/4 (1 - g)``, conservative scattering, [4]_), and ln T is exactly linear in ln(1 + a τ).
    ``a = 1/20`` is this table's fit (TUV-x, surface albedo and diffuse light included): the
    largest error of ln-linear interpolation at the midpoints of the cot nodes 0-30 falls from
    1.5 % with ln(1 + τ) to 0.35 %.
    """
    return np.log1p(np.asarray(x, dtype=float) / CLOUD_AXIS_SCALE)


#: Axis transforms named by the ``interpolation_axis`` attribute of a table coordinate.
AXIS_TRANSFORMS: dict[str, Callable] = {
    "linear": _identity,
    "log": np.log,
    "log1p": np.log1p,
    "log1p_20": _log1p_cloud,
    "cos": _cos_degrees,
    "sqrt_cos": _sqrt_cos_degrees,
}

#: Value transforms named by ``interpolation_value``: (forward, inverse).
VALUE_TRANSFORMS: dict[str, tuple[Callable, Callable]] = {
    "linear": (_identity, _identity),
    "log": (np.log, np.exp),
}


class Multilinear:
    """Multilinear interpolator over one rectilinear grid, for one or more value arrays.

    Parameters
    ----------
    axes : sequence of 1-D array_like
        Node coordinates of each axis (already transformed), strictly increasing or strictly
        decreasing, at least two nodes each, finite.
    values : array_like or sequence of array_like
        Values at the nodes (already transformed), shape ``tuple(len(a) for a in axes)``. Several
        arrays of that shape share the cell search and weights of each point.

    Raises
    ------
    UVInputError
        An axis is not 1-D, too short, not finite or not strictly monotonic, or a value array
        has the wrong shape.
    """

    def __init__(self, axes: Sequence, values):
        axes = [np.asarray(a, dtype=np.float64) for a in axes]
        shape = tuple(a.size for a in axes)
        many = not (isinstance(values, np.ndarray) or np.ndim(values) == len(axes))
        tables = [np.asarray(v, dtype=np.float64) for v in (values if many else [values])]
        for d, a in enumerate(axes):
            if a.ndim != 1 or a.size < 2:
                raise UVInputError(f"axis {d} has shape {a.shape}; expected a 1-D array of at "
                                   "least two nodes")
            if not np.all(np.isfinite(a)):
                raise UVInputError(f"axis {d} has non-finite nodes {a}; expected finite nodes")
            step = np.diff(a)
            if not (np.all(step > 0) or np.all(step < 0)):
                raise UVInputError(f"axis {d} nodes {a} are not strictly monotonic; expected "
                                   "strictly increasing or strictly decreasing nodes")
        for t in tables:
            if t.shape != shape:
                raise UVInputError(f"values have shape {t.shape}; expected {shape}, one entry "
                                   "per node of the axes")
        # descending axes are flipped once, with their values, so that the search is ascending
        flip = tuple(d for d, a in enumerate(axes) if a[0] > a[-1])
        self.axes = [a[::-1].copy() if d in flip else a for d, a in enumerate(axes)]
        self.tables = [np.ascontiguousarray(np.flip(t, axis=flip) if flip else t)
                       for t in tables]
        self.many = many
        self._expanded = {}

    @property
    def shape(self) -> tuple[int, ...]:
        """Number of nodes along each axis."""
        return tuple(a.size for a in self.axes)

    def _locate(self, d: int, x: np.ndarray):
        """Cell index, weight of the upper node, and outside-range mask of ``x`` on axis ``d``."""
        a = self.axes[d]
        i = np.searchsorted(a, x, side="right")
        i = np.clip(i - 1, 0, a.size - 2)
        lo = a[i]
        w = x - lo
        w /= a[i + 1] - lo
        outside = (x < a[0]) | (x > a[-1])
        return i, w, outside

    def __call__(self, points: Sequence, *, workers: int | None = None,
                 chunk: int = CHUNK_POINTS):
        """Interpolate at ``points``.

        Parameters
        ----------
        points : sequence of array_like
            One coordinate array per axis (already transformed), broadcastable together.
        workers : int, optional
            Threads working on the chunks; default: every CPU for inputs of more than one chunk.
        chunk : int, optional
            Points per chunk. [1]

        Returns
        -------
        values : ndarray or list of ndarray
            Interpolated values, shape of the broadcast points; NaN outside the axes' ranges or
            where a coordinate is NaN. A list, one per value array, when several were given.
        outside : ndarray of bool
            True where a (non-NaN) coordinate lies outside its axis' range.
        """
        nd = len(self.axes)
        if len(points) != nd:
            raise UVInputError(f"got {len(points)} coordinate arrays for a {nd}-D table; "
                               f"expected {nd}")
        points = [np.asarray(p) for p in points]
        shape = np.broadcast_shapes(*(p.shape for p in points))
        # coordinates that are one number for every point collapse their axis in the table once
        tables, outside_all = list(self.tables), False
        axes_left, points_left = [], []
        removed = 0
        for d, p in enumerate(points):
            if p.size == 1:
                x = np.asarray(p.reshape(()), dtype=np.float64)
                i, w, out = self._locate(d, x)
                outside_all = outside_all or bool(out)
                ax = d - removed
                tables = [(1.0 - w) * np.take(t, i, axis=ax) + w * np.take(t, i + 1, axis=ax)
                          for t in tables]
                removed += 1
            else:
                axes_left.append(d)
                points_left.append(np.broadcast_to(p, shape).reshape(-1))
        n = int(np.prod(shape, dtype=np.int64))
        outside = np.full(n, outside_all, dtype=bool)
        if not axes_left:
            results = [np.full(n, t[()]) for t in tables]
        else:
            results = [np.empty(n) for _ in tables]
            self._chunked(axes_left, points_left, tables, results, outside, workers, chunk)
        if outside_all:
            for r in results:
                r[:] = np.nan
        results = [r.reshape(shape) for r in results]
        outside = outside.reshape(shape)
        return (results if self.many else results[0]), outside

    def _chunked(self, dims, points, tables, results, outside, workers, chunk):
        """Fill ``results`` and ``outside`` (1-D) chunk by chunk, threads over the chunks."""
        nd, n = len(dims), outside.size
        tables = [np.ascontiguousarray(t) for t in tables]
        strides = [s // tables[0].itemsize for s in tables[0].strides]
        # the corners along the last ``m`` axes (the smallest strides) of every node are laid
        # side by side once, so one gather fetches 2^m of them (a 64-byte cache line for m = 3)
        m = min(INNER_AXES, nd) if n >= EXPAND_MIN_POINTS else 0
        inner_off = _corner_offsets(strides[nd - m:])
        outer_off = _corner_offsets(strides[:nd - m])
        expanded = [self._expand(t, inner_off) for t in tables]

        local = threading.local()  # per-thread buffers, reused chunk after chunk

        def buffers(k):
            buf = getattr(local, "buf", None)
            if buf is None or buf[0].shape[1] != k:
                buf = (np.empty((outer_off.size, k, inner_off.size)),  # gathered corners
                       np.empty((outer_off.size, inner_off.size, k)),  # corner-major copy
                       np.empty((outer_off.size, k), dtype=np.intp))
                local.buf = buf
            return buf

        def run(start):
            stop = min(start + chunk, n)
            k = stop - start
            gathered, corners, idx = buffers(k)
            base = np.zeros(k, dtype=np.intp)
            blends = []
            for j, d in enumerate(dims):
                x = np.asarray(points[j][start:stop], dtype=np.float64)
                i, w, out = self._locate(d, x)
                outside[start:stop] |= out
                if strides[j] != 1:
                    i *= strides[j]
                base += i
                blends.append((1.0 - w, w))
            np.add(base, outer_off[:, None], out=idx)
            rows = corners.reshape(-1, k)  # corner number = outer * 2^m + inner: axis 0 first
            bad = outside[start:stop]
            for table, res in zip(expanded, results, strict=True):
                np.take(table, idx, axis=0, out=gathered, mode="clip")
                np.copyto(corners, gathered.transpose(0, 2, 1))
                # collapse one axis at a time: axis 0 is the most significant bit of the
                # corner number, so its lower node is the first half of the rows
                half = rows.shape[0]
                for lo_w, hi_w in blends:
                    half //= 2
                    lo, hi = rows[:half], rows[half:2 * half]
                    lo *= lo_w
                    hi *= hi_w
                    lo += hi
                r = rows[0]
                r[bad] = np.nan
                res[start:stop] = r

        starts = range(0, n, chunk)
        if workers is None:
            workers = os.cpu_count() or 1
        workers = max(1, min(workers, len(starts)))
        if workers == 1:
            for s in starts:
                run(s)
        else:
            with ThreadPoolExecutor(workers) as pool:
                for _ in pool.map(run, starts):
                    pass

    def _expand(self, table, inner_off):
        """``(M, 2^m)`` array: row ``f`` holds ``table.flat[f + inner_off]``."""
        flat = table.reshape(-1)
        if inner_off.size == 1:
            return flat[:, None]
        key = (id(table), tuple(inner_off))
        cached = self._expanded.get(key)
        if cached is not None and cached[0] is table:
            return cached[1]
        rows = flat.size - int(inner_off[-1])
        out = np.empty((rows, inner_off.size))
        for c, off in enumerate(inner_off):
            out[:, c] = flat[off:off + rows]
        if any(table is t for t in self.tables):  # keep it only for the tables we own
            self._expanded[key] = (table, out)
        return out

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_expanded"] = {}  # rebuilt where it is used, never shipped
        return state


def _corner_offsets(strides) -> np.ndarray:
    """Flat offsets of the ``2^len(strides)`` corners of a cell, first axis most significant."""
    nd = len(strides)
    bits = (np.arange(2 ** nd)[:, None] >> np.arange(nd - 1, -1, -1)) & 1
    return (bits * np.asarray(strides, dtype=np.intp)).sum(axis=1).astype(np.intp)


def multilinear(axes: Sequence, values, points: Sequence, *, workers: int | None = None):
    """Multilinear interpolation of ``values`` on the grid ``axes`` at ``points``.

    All three are in the transformed space the interpolation is linear in: apply
    :data:`AXIS_TRANSFORMS` and :data:`VALUE_TRANSFORMS` first (or use
    :func:`table_interpolate`).

    .. math:: f(x) = \\sum_{c \\in \\{0,1\\}^N} v_{i + c} \\prod_d w_d^{c_d} (1 - w_d)^{1 - c_d},
              \\quad w_d = \\frac{x_d - x_{d,i_d}}{x_{d,i_d+1} - x_{d,i_d}}

    evaluated by collapsing one axis at a time (see the module notes) [3]_.

    Parameters
    ----------
    axes : sequence of 1-D array_like
        Node coordinates of each axis, strictly increasing or strictly decreasing. [transformed]
    values : array_like, shape ``tuple(len(a) for a in axes)``
        Values at the nodes. [transformed]
    points : sequence of array_like
        One coordinate array per axis, broadcastable together. [transformed]
    workers : int, optional
        Threads (default: every CPU when there is more than one chunk of points).

    Returns
    -------
    values : ndarray
        Interpolated values, shape of the broadcast points; NaN where a coordinate is outside its
        axis' range or NaN. Exact at the nodes and for functions linear in each axis.
    outside : ndarray of bool
        True where a coordinate (not NaN) lies outside its axis' range.

    References
    ----------
    .. [3] Weiser and Zarantonello, Math. Comp. 50, 189-196, 1988.
       doi:10.1090/S0025-5718-1988-0917826-0

    Examples
    --------
    >>> import numpy as np
    >>> f, outside = multilinear([[0.0, 1.0], [3.0, 2.0]], [[0.0, 1.0], [2.0, 3.0]],
    ...                          [np.array([0.5, 2.0]), 2.5])
    >>> f.tolist(), outside.tolist()
    ([1.5, nan], [False, True])
    """
    return Multilinear(axes, np.asarray(values, dtype=np.float64))(points, workers=workers)


class TableInterpolator:
    """The interpolator of one or more variables of a lookup table, transforms applied.

    Prepared once (axes and values transformed, descending axes flipped), then called with
    untransformed coordinates as many times as needed.

    Parameters
    ----------
    table : xarray.Dataset
        Lookup table in the :mod:`hubkit.uv` format: dims with an ``interpolation_axis``
        attribute on their coordinates, data variables with ``interpolation_value``.
    names : str or sequence of str
        Data variables to interpolate (all on the same dims).
    """

    def __init__(self, table, names):
        self.many = not isinstance(names, str)
        self.names = list(names) if self.many else [names]
        for name in self.names:
            if name not in table.data_vars:
                raise UVInputError(f"the table has no variable {name!r}; it has "
                                   f"{sorted(table.data_vars)}")
        self.dims = tuple(table[self.names[0]].dims)
        self.axis_transforms = []
        axes = []
        for dim in self.dims:
            if dim not in table.coords:
                raise UVInputError(f"table dimension {dim!r} has no coordinate")
            kind = table[dim].attrs.get("interpolation_axis", "linear")
            if kind not in AXIS_TRANSFORMS:
                raise UVInputError(f"table coordinate {dim!r} has interpolation_axis={kind!r}; "
                                   f"expected one of {sorted(AXIS_TRANSFORMS)}")
            fn = AXIS_TRANSFORMS[kind]
            self.axis_transforms.append(fn)
            axes.append(fn(np.asarray(table[dim].values, dtype=np.float64)))
        values, self.inverse = [], []
        for name in self.names:
            var = table[name]
            if tuple(var.dims) != self.dims:
                raise UVInputError(f"table variable {name!r} has dims {var.dims}; expected "
                                   f"{self.dims}")
            kind = var.attrs.get("interpolation_value", "linear")
            if kind not in VALUE_TRANSFORMS:
                raise UVInputError(f"table variable {name!r} has interpolation_value={kind!r}; "
                                   f"expected one of {sorted(VALUE_TRANSFORMS)}")
            forward, inverse = VALUE_TRANSFORMS[kind]
            with np.errstate(divide="ignore"):
                values.append(forward(np.asarray(var.values, dtype=np.float64)))
            self.inverse.append(inverse)
        self.grid = Multilinear(axes, values)

    def __call__(self, *, workers: int | None = None, **coords):
        """Interpolate at ``coords`` (one keyword per table dim, untransformed, broadcastable).

        Returns ``(values, outside)``: values (a list when several names were given) in the
        table's units, NaN outside; ``outside`` True where a coordinate is outside the table.
        """
        missing = [d for d in self.dims if d not in coords]
        extra = [c for c in coords if c not in self.dims]
        if missing or extra:
            raise UVInputError(f"coordinates {sorted(coords)} do not match the table dims "
                               f"{list(self.dims)} (missing {missing}, unknown {extra})")
        points = []
        with np.errstate(invalid="ignore", divide="ignore"):
            for dim, fn in zip(self.dims, self.axis_transforms, strict=True):
                points.append(fn(np.asarray(coords[dim], dtype=np.float64)))
        values, outside = self.grid(points, workers=workers)
        values = [inv(v) for inv, v in zip(self.inverse, values, strict=True)]
        return (values if self.many else values[0]), outside


def table_interpolate(table, name: str, *, workers: int | None = None, **coords):
    """Interpolate variable ``name`` of a lookup table at untransformed coordinates.

    The coordinates are transformed by their ``interpolation_axis`` attribute (``linear``,
    ``log``: ln x, ``log1p``: ln(1 + x), ``cos``: cos of degrees), the values by their
    ``interpolation_value`` (``linear``, or ``log``: interpolate ln v, return exp), and
    :func:`multilinear` does the rest [1]_ [2]_.

    Parameters
    ----------
    table : xarray.Dataset
        Lookup table in the :mod:`hubkit.uv` format.
    name : str
        Variable to interpolate (``"uvi"`` or ``"uva"``).
    workers : int, optional
        Threads (default: every CPU for large inputs).
    **coords : array_like
        One keyword per table dim, in the units of its coordinate, broadcastable together.

    Returns
    -------
    values : ndarray
        Interpolated values in the variable's units; NaN outside the table or for NaN input.
    outside : ndarray of bool
        True where a coordinate (not NaN) is outside the table's range.
    """
    return TableInterpolator(table, name)(workers=workers, **coords)
