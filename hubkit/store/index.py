"""Search: the Parquet index of the Items (a cache, rebuilt from them at will) and its filters."""

from __future__ import annotations

import logging

import pandas as pd
import pystac

from hubkit import catalog, schemas
from hubkit.store import checks
from hubkit.store.items import item_from_dict

__all__ = ["SearchMixin"]

log = logging.getLogger(__name__)


class SearchMixin:
    """:meth:`index`, :meth:`rebuild_index` and :meth:`search`, mixed into
    :class:`hubkit.store.Store`."""

    # -- search ------------------------------------------------------------------------------
    @property
    def _index_path(self) -> str:
        return self._path("index", "items.parquet")

    def _load_index(self) -> pd.DataFrame:
        path = self._index_path
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return catalog.index_rows([])
        stamp = _stamp(info)
        if self._index_cache is not None and self._index_cache[0] == stamp:
            return self._index_cache[1]
        try:
            df = pd.read_parquet(self._zarr_url(path) if self.protocol != "file" else path,
                                 storage_options=self.storage_options or None)
        except Exception as exc:  # a damaged index is only a cache: rebuild it
            log.warning("search index %s unreadable (%s); rebuilding", path, exc)
            return catalog.index_rows([])
        problem = catalog.index_problem(df)
        if problem:
            log.warning("search index %s: %s; rebuilding it from the items", path, problem)
            return catalog.index_rows([])
        self._index_cache = (stamp, df)
        return df

    def index(self) -> pd.DataFrame:
        """The search index, brought up to date with the committed Items.

        The Items are listed (a cheap listing, no reads); Items missing from the index are read
        and added, rows of deleted Items dropped, and the refreshed index is written back.
        """
        with self._index_lock:
            listing = self._list_item_paths()
            df = self._load_index()
            known = set(df["id"].astype(str))
            listed = set(listing)
            if known == listed:
                return df
            added = catalog.index_rows(self._read_items(sorted(listed - known), listing))
            kept = df[df["id"].isin(listed)]
            if not len(added) and len(kept) == len(df):
                return df  # only damaged Items are new: nothing to write back
            df = pd.concat([kept, added], ignore_index=True) if len(kept) else added
            df = df.sort_values("id", ignore_index=True)
            self._save_index(df)
            return df

    def _save_index(self, df: pd.DataFrame) -> None:
        data = df.to_parquet(index=False)
        try:
            self._write_bytes(self._index_path, data)
            info = self.fs.info(self._index_path)
        except OSError as exc:  # read-only store: searching still works, just slower
            log.warning("cannot write the search index %s: %s", self._index_path, exc)
            return
        self._index_cache = (_stamp(info), df)

    def rebuild_index(self) -> pd.DataFrame:
        """Rebuild the search index from the Items alone."""
        with self._index_lock:
            listing = self._list_item_paths()
            df = catalog.index_rows(self._read_items(sorted(listing), listing))
            self._save_index(df)
            return df

    def search(self, collection: str | None = None, *, bbox=None, datetime=None,
               species: str | None = None, instrument: str | None = None,
               limit: int | None = None, site: str | None = None, inlet=None,
               network: str | None = None, scale: str | None = None,
               platform: str | None = None) -> list[pystac.Item]:
        """Items matching every given filter, in id order.

        Parameters
        ----------
        collection : str, optional
            Product type, e.g. ``"oco2-soundings"``.
        bbox : (west, south, east, north), optional
            Items whose bounding box intersects this one. [°]
        datetime : str or (start, end), optional
            ``"2016-08/2016-09"``, ``"2016-08-31"``, ``"../2016-09"`` or a pair; Items whose time
            range overlaps it.
        species, instrument : str, optional
            Case-insensitive equality; a product of several species (``"co2,ch4,co"``) matches
            each of them.
        limit : int, optional
            At most this many Items.
        site, inlet, network, scale, platform : optional
            Station facets of in-situ products: ``site`` (code, e.g. ``"BAO"``), ``inlet``
            (intake height [m], ``100`` or ``"100m"``: products that have that inlet),
            ``network``, ``scale`` (calibration scale) and ``platform``; case-insensitive.
        """
        if collection is not None:
            catalog.check_name(collection, "collection")
        index = self.index()
        _check_search_terms(self, index, collection, species, instrument)
        hits = catalog.filter_index(
            index, collection=collection, bbox=bbox, datetime=datetime,
            species=species, instrument=instrument,
            site=site, inlet=inlet, network=network, scale=scale, platform=platform,
        )
        ids = list(hits["id"])[:limit]
        found = []
        for d in self._read_items(ids):
            try:
                found.append(item_from_dict(d))
            except Exception as exc:  # what pystac refuses: leave it out, as a damaged Item
                log.warning("%s: item %s is not a valid STAC Item (%s); run `hubkit fsck`",
                            self.url, d.get("id"), exc)
        return found



def _check_search_terms(store, index: pd.DataFrame, collection, species,
                        instrument) -> None:
    """Refuse a product type, species or instrument that nothing can match (did you mean …)."""
    if collection is None and species is None and instrument is None:
        return
    known_species = {s.species for s in schemas.PRODUCT_TYPES.values()}
    for schema in schemas.PRODUCT_TYPES.values():
        known_species.update(name for name, _units in schema.species_units)
    checks.check_search_terms(
        collection=collection, species=species, instrument=instrument,
        collections=set(schemas.PRODUCT_TYPES) | set(index["collection"].dropna()),
        species_known={*known_species, *(name.strip() for names in index["species"].dropna()
                                          for name in str(names).split(","))} - {None},
        instruments=set(index["instrument"].dropna()), store_url=store.url)



def _stamp(info: dict) -> tuple:
    """What tells one version of an object from another: time, size, ETag."""
    return (info.get("mtime") or info.get("LastModified") or info.get("created"),
            info.get("size"), info.get("ETag"))

