"""Search latency on a directory store of 10,000 items (``--quick``: 2,000).

Ours: :meth:`hubkit.store.Store.search` with typical queries (collection + bbox + datetime, about
1 % of the items each) with the Parquet index warm. Reference, in the same run: a full scan, which
reads every Item JSON of the store, filters in Python and builds pystac Items of the hits (what
searching a static STAC catalog without an index costs). Both return the same ids (checked).

Also measured: the cold first search (no index file: built from every Item), an explicit
``rebuild_index()``, and a search right after one new product was stored (incremental refresh).

The catalog: a share of the products (``--real-fraction``, default 10 %) are stored with
``Store.put`` on tiny datasets (8 soundings or observations); the rest get their Items through the
same code path the store uses for Items (``catalog.make_item`` on the same kind of tiny dataset,
then ``Store._commit_item``) without writing Zarr data, because ``put`` costs ~20 ms a product
(10,000 would take 3-4 minutes). Search reads only Items and the index, never the data.

Timing: every query once per call, ours and the full scan interleaved round after round until the
medians are stable (``_common.compare``); the ratio is from CPU time, the latency goal on wall time.

Run: ``python -m benchmarks.store_search [--quick] [--items N] [--real-fraction F]``
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import posixpath
import shutil
import tempfile
import time
import uuid
import warnings
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pystac
import xarray as xr

import hubkit
from benchmarks import _common
from hubkit import catalog
from hubkit.store import Store

GOAL_S = 0.5
#: (collection, share of the items)
COLLECTIONS = (("oco2-soundings", 0.6), ("surface-obs", 0.25), ("cf-dataset", 0.15))
T0 = np.datetime64("2016-01-01T00:00:00", "s")
DAYS = 730  # items spread over 2016-2017
N_SOUNDINGS = 8


# -- the catalog -------------------------------------------------------------------------------
def _tiny_dataset(collection: str, rng: np.random.Generator) -> xr.Dataset:
    """A tiny dataset of ``collection`` at a random place and time (valid for its schema)."""
    n = N_SOUNDINGS
    t_start = T0 + np.timedelta64(int(rng.integers(0, DAYS * 86400)), "s")
    if collection == "oco2-soundings":
        # a short stretch of an orbit track: ~1-3 degrees of latitude, seconds apart
        lat0, lon0 = rng.uniform(-60, 73), rng.uniform(-180, 179.5)
        lat = lat0 + np.sort(rng.uniform(0, rng.uniform(1, 3), n))
        lon = lon0 + rng.uniform(0, 0.5, n)
        times = t_start + np.arange(n) * np.timedelta64(1, "s")
        xco2 = 405 + 2 * np.sin(2 * np.pi * lat / 180) + rng.normal(0, 0.8, n)
        return xr.Dataset(
            {
                "xco2": ("sounding", xco2.astype("f4"), {"units": "ppm"}),
                "xco2_uncertainty": ("sounding", np.full(n, 0.5, "f4"), {"units": "ppm"}),
                "latitude": ("sounding", lat, {"units": "degrees_north"}),
                "longitude": ("sounding", lon, {"units": "degrees_east"}),
                "time": ("sounding", times),
            },
            attrs={"hubkit_species": "co2", "instrument": "OCO-2", "platform": "OCO-2",
                   "title": "OCO-2 soundings (benchmark)"},
        )
    if collection == "surface-obs":
        # one surface site, hourly observations
        lat, lon = rng.uniform(-60, 75), rng.uniform(-180, 180)
        times = t_start + np.arange(n) * np.timedelta64(3600, "s")
        return xr.Dataset(
            {
                "value": ("time", (410 + rng.normal(0, 3, n)).astype("f8"), {"units": "ppm"}),
                "latitude": ("time", np.full(n, lat), {"units": "degrees_north"}),
                "longitude": ("time", np.full(n, lon), {"units": "degrees_east"}),
                "altitude": ("time", np.full(n, rng.uniform(0, 3000)), {"units": "m"}),
                "time": ("time", times),
            },
            attrs={"hubkit_species": "co2", "instrument": "in-situ", "platform": "surface",
                   "title": "ObsPack site (benchmark)"},
        )
    # cf-dataset: a small regional grid over up to a month. As many latitudes as longitudes:
    # catalog.item_extent cannot yet take 1-D latitude/longitude coordinates of different lengths.
    w, s = rng.uniform(-180, 170), rng.uniform(-60, 65)
    lat = np.linspace(s, s + rng.uniform(2, 10), 3)
    lon = np.linspace(w, w + rng.uniform(2, 10), 3)
    times = t_start + np.array([0, int(rng.integers(1, 30 * 86400))]) * np.timedelta64(1, "s")
    field = 410 + rng.normal(0, 1, (2, 3, 3))
    return xr.Dataset(
        {"xco2": (("time", "latitude", "longitude"), field.astype("f4"), {"units": "ppm"})},
        coords={
            "time": ("time", times),
            "latitude": ("latitude", lat, {"units": "degrees_north"}),
            "longitude": ("longitude", lon, {"units": "degrees_east"}),
        },
        attrs={"title": "regional XCO2 grid (benchmark)"},
    )


def _put_real(store: Store, collection: str, ds: xr.Dataset, key: str) -> pystac.Item:
    return store.put(ds, product_type=collection, inputs=[key], step="benchmark-search")


def _commit_fast(store: Store, collection: str, ds: xr.Dataset, key: str) -> None:
    """The Item ``put`` would write for ``ds``, committed the same way, without Zarr data."""
    inputs = [key]
    parameters: dict = {}
    item_id = catalog.product_id(collection, inputs, "benchmark-search", "1", parameters)
    item_path = store._item_path(item_id)
    data_path = store._path("data", collection, item_id, f"{uuid.uuid4().hex[:12]}.zarr")
    provenance = {
        "inputs": inputs, "step": "benchmark-search", "step_version": "1",
        "parameters": parameters, "hubkit_version": hubkit.__version__,
        "created": datetime.now(timezone.utc).isoformat(),
    }
    ds = ds.copy()
    ds.attrs["hubkit_product_type"] = collection
    item = catalog.make_item(
        ds, item_id=item_id, collection=collection,
        asset_href=posixpath.relpath(data_path, posixpath.dirname(item_path)),
        provenance=provenance,
    )
    store._commit_item(item_path, item)


def build_catalog(store: Store, n_items: int, real_fraction: float, seed: int = 1) -> dict:
    """Store ``n_items`` products; return how (counts and seconds)."""
    rng = np.random.default_rng(seed)
    names = [c for c, _ in COLLECTIONS]
    shares = np.array([p for _, p in COLLECTIONS])
    picks = rng.choice(len(names), size=n_items, p=shares / shares.sum())
    n_real = int(round(n_items * real_fraction))
    real_at = set(rng.choice(n_items, size=n_real, replace=False).tolist()) if n_real else set()
    t_real = t_fast = 0.0
    t_start = time.perf_counter()
    for i in range(n_items):
        collection = names[picks[i]]
        ds = _tiny_dataset(collection, rng)
        t0 = time.perf_counter()
        if i in real_at:
            _put_real(store, collection, ds, f"bench-{i}")
            t_real += time.perf_counter() - t0
        else:
            _commit_fast(store, collection, ds, f"bench-{i}")
            t_fast += time.perf_counter() - t0
        if (i + 1) % 2000 == 0:
            _common.log(f"  {i + 1}/{n_items} items ({time.perf_counter() - t_start:.0f} s)")
    per_collection = {c: int((picks == k).sum()) for k, c in enumerate(names)}
    return {
        "items": n_items,
        "items_via_store_put": n_real,
        "items_via_make_item_commit_item": n_items - n_real,
        "items_per_collection": per_collection,
        "seconds_store_put_total": round(t_real, 2),
        "ms_per_store_put": round(1e3 * t_real / n_real, 2) if n_real else None,
        "ms_per_make_item_commit_item": round(1e3 * t_fast / max(n_items - n_real, 1), 2),
        "seconds_total": round(time.perf_counter() - t_start, 2),
    }


# -- the queries -------------------------------------------------------------------------------
def make_queries(n: int, seed: int = 2) -> list[dict]:
    """Typical searches: one collection, a 120°x60° box, a 3-month window (~1 % of the items)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        w = float(rng.uniform(-180, 60))
        s = float(rng.uniform(-60, 15))
        month = pd.Timestamp(T0) + pd.DateOffset(months=int(rng.integers(0, 22)))
        last = month + pd.DateOffset(months=2)
        out.append({
            "collection": "oco2-soundings",
            "bbox": (round(w, 2), round(s, 2), round(w + 120, 2), round(s + 60, 2)),
            "datetime": f"{month:%Y-%m}/{last:%Y-%m}",
        })
    return out


def search_ours(store: Store, query: dict) -> list[pystac.Item]:
    return store.search(query["collection"], bbox=query["bbox"], datetime=query["datetime"])


def _parse_time(text: str) -> datetime:
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _item_dicts(store: Store) -> list[dict]:
    """Every Item JSON under the store, parsed (listing + reads, no index)."""
    if store.protocol == "file":
        out = []
        for path in glob.glob(os.path.join(store.root, "catalog", "*", "items", "*.json")):
            if not os.path.basename(path).startswith("."):
                with open(path, "rb") as f:
                    out.append(json.load(f))
        return out
    # object store: one listing, then concurrent GETs (s3fs batches ``cat`` of many paths)
    store.fs.invalidate_cache(store._path("catalog"))
    paths = [p for p in store.fs.glob(store._path("catalog", "*", "items", "*.json"))
             if not posixpath.basename(p).startswith(".")]
    return [json.loads(b) for b in store.fs.cat(paths).values()]


def search_full_scan(store: Store, query: dict) -> list[pystac.Item]:
    """The reference: read every Item JSON of the store, filter in Python, build the hits."""
    w, s, e, n = query["bbox"]
    start, end = (t.to_pydatetime(warn=False) for t in
                  catalog.parse_datetime_range(query["datetime"]))
    hits = []
    for d in _item_dicts(store):
        if d.get("collection") != query["collection"]:
            continue
        bbox = d.get("bbox")
        if not bbox or bbox[0] > e or bbox[2] < w or bbox[1] > n or bbox[3] < s:
            continue
        p = d["properties"]
        t_start = _parse_time(p.get("start_datetime") or p.get("datetime"))
        t_end = _parse_time(p.get("end_datetime") or p.get("datetime"))
        if t_end < start or t_start > end:
            continue
        hits.append(d)
    hits.sort(key=lambda d: d["id"])
    return [pystac.Item.from_dict(d, preserve_dict=False) for d in hits]


# -- the benchmark -----------------------------------------------------------------------------
def bench(url: str, n_items: int, real_fraction: float, n_queries: int,
          repeats: int) -> dict:
    """Build the catalog in the (empty) store at ``url`` and time the searches."""
    store = Store(url)
    _common.log(f"store_search: building a catalog of {n_items} items in {url}")
    built = build_catalog(store, n_items, real_fraction)
    _common.log(f"  built in {built['seconds_total']} s")
    queries = make_queries(n_queries)

    # Cold: no index file, a fresh Store object (no in-memory cache): the first search builds
    # the index from every Item.
    store._remove(store._index_path)
    cold_store = Store(url)
    t_cold = _common.time_once(lambda: search_ours(cold_store, queries[0]))
    t_rebuild = _common.time_once(cold_store.rebuild_index)

    # Warm: the index is up to date and cached in this Store object.
    store = Store(url)
    search_ours(store, queries[0])
    hits = []
    for q in queries:
        got = [it.id for it in search_ours(store, q)]
        want = [it.id for it in search_full_scan(store, q)]
        if got != want:
            raise AssertionError(f"search and full scan disagree on {q}: "
                                 f"{len(got)} vs {len(want)} hits")
        hits.append(len(got))
    # every query once per call, both sides interleaved until the medians are stable
    timing = _common.compare(
        {"ours": _common.Side(lambda: [search_ours(store, q) for q in queries],
                              units=len(queries)),
         "reference": _common.Side(lambda: [search_full_scan(store, q) for q in queries],
                                   units=len(queries))},
        min_rounds=repeats, max_rounds=max(repeats, 8), warmup=False, label="store_search",
        budget_s=300)
    ours = {k: v / len(queries) if k != "times_s" else [t / len(queries) for t in v]
            for k, v in timing["ours"]["wall_s"].items()}
    ref = {k: v / len(queries) if k != "times_s" else [t / len(queries) for t in v]
           for k, v in timing["reference"]["wall_s"].items()}
    # Incremental: one new product stored, then a search (lists, reads the one new Item,
    # rewrites the index). Several rounds, each with a new product.
    rng = np.random.default_rng(99)
    t_incr, t_put = [], []
    for k in range(3):
        ds = _tiny_dataset("oco2-soundings", rng)
        t_put.append(_common.time_once(
            lambda ds=ds, k=k: _put_real(store, "oco2-soundings", ds, f"incr-{k}")))
        t_incr.append(_common.time_once(
            lambda k=k: search_ours(store, queries[k % len(queries)])))
    # ...and the same with a fresh Store object (another process: the index read from storage)
    _put_real(store, "oco2-soundings", _tiny_dataset("oco2-soundings", rng), "incr-fresh")
    t_incr_fresh = _common.time_once(lambda: search_ours(Store(url), queries[0]))

    sel = [h / n_items for h in hits]
    return {
        "ratio": round(timing["ratio"], 2),
        "stable": timing["stable"],
        "wall_ratio": round(timing["wall_ratio"], 2),
        "goal_met": ours["median_s"] < GOAL_S,
        "timing": timing,
        "catalog_built_by": (
            f"{built['items_via_store_put']} items via Store.put on tiny datasets "
            f"({N_SOUNDINGS} soundings/observations each, Zarr data written); "
            f"{built['items_via_make_item_commit_item']} via catalog.make_item + "
            "Store._commit_item on the same kind of tiny datasets (Item only, no Zarr data: "
            "search never reads data)"),
        "catalog": built,
        "queries": len(queries),
        "query_kind": "collection='oco2-soundings' + 120x60 degree bbox + 3-month datetime",
        "selectivity_median": round(_common.median(sel), 4),
        "selectivity_range": [round(min(sel), 4), round(max(sel), 4)],
        "hits_median": _common.median(hits),
        "warm_search_wall_s_per_query": ours,
        "reference_full_scan_wall_s_per_query": ref,
        "cold_first_search_s": round(t_cold, 4),
        "rebuild_index_s": round(t_rebuild, 4),
        "search_after_one_new_item_s": _common.summary(t_incr),
        "search_after_one_new_item_fresh_store_s": round(t_incr_fresh, 4),
        "store_put_of_that_item_s": _common.summary(t_put),
    }


def main(argv=None) -> dict:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--items", type=int, help="catalog size (default 10000; quick 2000)")
    p.add_argument("--real-fraction", type=float, default=0.1,
                   help="share of the items stored with Store.put (default 0.1)")
    p.add_argument("--queries", type=int, default=12, help="distinct queries (default 12)")
    p.add_argument("--repeats", type=int, help="timings of each query (default 5; quick 3)")
    p.add_argument("--backend", choices=("directory", "s3"), default="directory",
                   help="the store searched (default: directory; s3: moto in a child process)")
    args = p.parse_args(argv)
    n_items = args.items or (2000 if args.quick else 10000)
    repeats = args.repeats or (3 if args.quick else 5)
    # pandas warns when catalog.item_extent turns datetime64[ns] values into Python datetimes
    warnings.filterwarnings("ignore", message="Discarding nonzero nanoseconds")
    load_at_start = _common.load_average()

    with contextlib.ExitStack() as stack:
        if args.backend == "s3":
            s3 = stack.enter_context(_common.moto_s3("process"))
            url = f"s3://{s3.bucket}/store"
        else:
            tmp = tempfile.mkdtemp(prefix="hubkit-bench-search-")
            stack.callback(shutil.rmtree, tmp, ignore_errors=True)
            url = os.path.join(tmp, "store")
        figures = bench(url, n_items, args.real_fraction, args.queries, repeats)
    return {
        "benchmark": "store_search",
        "reference": "full scan: read every Item JSON of the store, filter in Python, pystac "
                     "Items of the hits",
        "ratio": figures.pop("ratio"),
        "ratio_is": "reference CPU seconds / our CPU seconds for the same queries (medians "
                    "of interleaved rounds); the goal is on our wall-clock latency",
        "goal": f"median warm search latency < {GOAL_S} s",
        "goal_met": figures.pop("goal_met"),
        "quick": bool(args.quick),
        "backend": args.backend,
        "items": n_items,
        **figures,
        "machine": {**_common.machine(), "load_average_at_start": load_at_start},
    }


if __name__ == "__main__":
    _common.emit(main())
