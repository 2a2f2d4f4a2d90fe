"""Names and ids of the catalog: product ids derived from content, where a product's Item and
data live, and the checks on names users and Items give."""

from __future__ import annotations

import hashlib
import json
import posixpath
import re

from hubkit.errors import StoreError

STAC_PREFIX = "hubkit:"
#: Media type of the data asset of a Zarr product and of a table (Parquet) product.
ZARR_MEDIA_TYPE = "application/vnd+zarr"
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,199}$")


def check_name(name: str, what: str = "product id") -> str:
    """Return ``name`` if it is safe as a storage key component, else raise :class:`StoreError`.

    Names are lower-case ASCII letters, digits, ``.``, ``_`` and ``-``, not starting with a dot,
    so a name can never climb out of its folder (``../``) or hide as a dot-file.
    """
    if not isinstance(name, str) or not _ID_RE.match(name) or ".." in name:
        raise StoreError(
            f"invalid {what} {name!r}: expected lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, no '..', at most 200 characters"
        )
    return name


def product_id(product_type: str, *parts: object) -> str:
    """Content-derived product id: ``<product_type>-<16 hex digits of SHA-256 over parts>``.

    The parts are what makes the product what it is (a source file's checksum and reader version,
    or a step's inputs, version and parameters), so producing it again gives the same id.
    """
    check_name(product_type, "product type")
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return f"{product_type}-{h.hexdigest()[:16]}"


def collection_of(item_id: str) -> str:
    """The collection (product type) an id made by :func:`product_id` belongs to."""
    check_name(item_id)
    collection, sep, digest = item_id.rpartition("-")
    if not sep or not collection or not re.fullmatch(r"[0-9a-f]{16}", digest):
        raise StoreError(
            f"invalid product id {item_id!r}: expected '<product-type>-<16 hex digits>'"
        )
    return collection


#: Where an Item lies relative to the store root, and the way back up from its folder.
_ITEMS_FOLDER = "catalog/{collection}/items"
_TO_ROOT = "../../../"
_TOKEN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}\.(zarr|parquet)$")


def data_prefix(item_id: str) -> str:
    """The product's own data folder, relative to the store root: ``data/<type>/<id>``."""
    return f"data/{collection_of(item_id)}/{item_id}"


def asset_key(item_id: str, href) -> str:
    """The data key (relative to the store root) an Item's data-asset ``href`` names.

    Only the form the store writes is accepted, ``../../../data/<type>/<id>/<token>.zarr`` (or
    ``.parquet``) with this Item's own type and id: an href can never reach another product's
    data, a path outside the store, another file system or a hidden or nested object.

    Raises
    ------
    StoreError
        The href is anything else.
    """
    prefix = data_prefix(item_id)
    if isinstance(href, str) and href.startswith(_TO_ROOT + prefix + "/"):
        token = href[len(_TO_ROOT + prefix + "/"):]
        if _TOKEN_RE.match(token):
            return f"{prefix}/{token}"
    raise StoreError(
        f"item {item_id}: its data href {href!r} points outside the product's own data folder; "
        f"expected {_TO_ROOT}{prefix}/<token>.zarr or .parquet"
    )


def href_of(data_key: str, item_id: str) -> str:
    """The href, relative to the Item, of the data at ``data_key`` (see :func:`asset_key`)."""
    folder = _ITEMS_FOLDER.format(collection=collection_of(item_id))
    return posixpath.relpath(data_key, folder)


def computed_identity(product_type: str, inputs, step: str, step_version, parameters) -> tuple:
    """``(item id, provenance)`` of a computed product: the id derives from the sorted
    ``inputs`` (product ids or file checksums), ``step``, ``step_version`` and ``parameters``,
    so the same computation stored twice is one product (:meth:`hubkit.store.Store.put`), and
    the chain knows a product's id before computing it."""
    parameters = dict(parameters or {})
    inputs = sorted(str(i) for i in inputs)
    item_id = product_id(product_type, inputs, step, str(step_version), parameters)
    provenance = {
        "inputs": inputs,
        "step": step,
        "step_version": str(step_version),
        "parameters": parameters,
    }
    return item_id, provenance
