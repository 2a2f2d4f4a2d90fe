"""The product store: CF-compliant Zarr v3 data and Parquet tables with a STAC catalog, on a
directory, S3 or memory (:class:`Store`, opened with :func:`open_store`).

See :mod:`hubkit.store.core` for the layout and the commit protocol.
"""

from hubkit.store.core import Store, default_store_url, open_store, scratch_store_url
from hubkit.store.fsck import FsckReport
from hubkit.store.s3 import S3Limits, s3_options_from_env

__all__ = ["FsckReport", "S3Limits", "Store", "default_store_url", "open_store",
           "s3_options_from_env", "scratch_store_url"]
