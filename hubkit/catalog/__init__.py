"""STAC records of the store: Items for products, Collections for product types, the search index.

Pure functions on datasets, dicts and data frames; the reading and writing of the records is done
by :mod:`hubkit.store`. One Item per product (its data asset is the product's Zarr group, its
``hubkit:provenance`` property says where it came from); one Collection per product type. The
Parquet index holds one row per Item with the fields search filters on; it is a cache, always
rebuildable from the Items. Rooms: :mod:`~hubkit.catalog.ids` (product ids, paths, names),
:mod:`~hubkit.catalog.items` (Items and Collections), :mod:`~hubkit.catalog.search` (the index
and its filters).
"""

from hubkit.catalog.ids import (
    PARQUET_MEDIA_TYPE,
    STAC_PREFIX,
    ZARR_MEDIA_TYPE,
    asset_key,
    check_name,
    collection_of,
    computed_identity,
    data_prefix,
    href_of,
    product_id,
)
from hubkit.catalog.items import (
    ACDD_EXTENT,
    STATION_PROPERTIES,
    extent_attrs,
    item_extent,
    item_problem,
    make_collection,
    make_item,
)
from hubkit.catalog.search import (
    INDEX_COLUMNS,
    filter_index,
    index_problem,
    index_rows,
    parse_datetime_range,
    parse_inlet,
)

__all__ = [
    "ACDD_EXTENT", "INDEX_COLUMNS", "PARQUET_MEDIA_TYPE", "STAC_PREFIX", "STATION_PROPERTIES",
    "ZARR_MEDIA_TYPE", "asset_key", "check_name", "collection_of", "computed_identity",
    "data_prefix", "extent_attrs", "filter_index", "href_of", "index_problem", "index_rows",
    "item_extent", "item_problem", "make_collection", "make_item", "parse_datetime_range",
    "parse_inlet", "product_id",
]
