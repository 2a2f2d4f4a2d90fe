"""What a user types about a store, checked before it can do harm or mislead.

- the URL's form: ``s3:/bucket`` (one slash) or ``s3:bucket`` would otherwise be a local folder
  named ``s3:``; an unknown scheme is named with the forms that work;
- a store that is not there: commands that only read refuse it (suggesting a near name) instead
  of creating an empty store and answering "0 product(s)";
- S3 credentials: a missing or refused key names the variables to set, and how the hub sets them;
- search terms: an unknown product type, species or instrument is answered with "did you mean"
  and the values there are, instead of an empty result.

Pure functions of their arguments; :mod:`hubkit.store` calls them.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable

from hubkit.errors import MissingStoreError, SearchTermError, StoreError

__all__ = ["SCHEMES", "check_search_terms", "check_url", "missing_store_error",
           "s3_credentials_error"]

#: Schemes a store URL may have (a plain path is the ``file`` scheme).
SCHEMES = ("file", "s3", "memory")
URL_FORMS = "a directory path, file:///path, s3://bucket/prefix or memory://name"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):(//)?")


def check_url(url: str) -> None:
    """Refuse a malformed store URL (``s3:/bucket``, ``s3:bucket``) or an unknown scheme.

    A one-letter scheme is a Windows drive (``C:\\data``) and passes as a path.
    """
    match = _SCHEME.match(url)
    if match is None:
        return
    scheme, slashes = match.group(1), match.group(2)
    if not slashes:
        rest = url[len(scheme) + 1:].lstrip("/")
        fixed = f"{scheme.lower()}:///{rest}" if scheme.lower() == "file" else \
            f"{scheme.lower()}://{rest}"
        raise StoreError(
            f"store URL {url!r} is malformed: {scheme + ':'!r} is not followed by '//'; "
            f"expected {URL_FORMS} (did you mean {fixed!r}? a folder whose name holds ':' "
            f"can be given as ./{url})")
    if scheme.lower() not in SCHEMES:
        raise StoreError(
            f"store URL {url!r}: unknown scheme {scheme!r}; expected {URL_FORMS}")


def missing_store_error(url: str, siblings: Iterable[str] = ()) -> MissingStoreError:
    """The error for a store that does not exist; ``siblings`` are the names beside it (one of
    them may be what was meant)."""
    base = url.rstrip("/").rsplit("/", 1)
    close = difflib.get_close_matches(base[-1], list(siblings), n=1) if len(base) == 2 else []
    hint = f" (did you mean {base[0] + '/' + close[0]!r}?)" if close else ""
    return MissingStoreError(
        f"store {url} does not exist{hint}; expected an existing store. Nothing was created: "
        "`hubkit upload` and `hubkit demo` create a store, other commands do with --create "
        "(in Python: open_store(url, create=True))")


def s3_credentials_error(url: str, endpoint: str, exc: BaseException) -> StoreError:
    """The error for S3 without credentials (botocore's NoCredentialsError) or with refused
    ones (PermissionError): which variables to set, and where the hub sets them."""
    what = ("no credentials were found" if type(exc).__name__ == "NoCredentialsError"
            else f"the credentials were refused ({exc})")
    return StoreError(
        f"store {url}: {what} for the S3 endpoint {endpoint}; expected the keys in "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or FSSPEC_S3_KEY and FSSPEC_S3_SECRET), "
        "and for a server other than AWS its address in FSSPEC_S3_ENDPOINT_URL or "
        "AWS_ENDPOINT_URL. On the hub the chart sets them in every user server and Dask "
        "worker from the Secret <release>-hubkit-storage-credentials and the ConfigMap "
        "<release>-hubkit-env (hubkit-storage-credentials and hubkit-env for a release whose "
        "name contains 'hubkit'; docs/admin-guide.md); ask the hub's admin if they are missing")


def _suggest(kind: str, value: str, known: Iterable[str], where: str) -> SearchTermError:
    known = sorted(set(known), key=str.lower)
    lower = {k.lower(): k for k in known}
    close = [lower[c] for c in difflib.get_close_matches(value.lower(), list(lower), n=3,
                                                          cutoff=0.6)]
    if close:
        hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
    else:
        hint = f"expected one of {known}"
    return SearchTermError(f"{kind} {value!r} is unknown {where}; {hint}")


def check_search_terms(*, collection: str | None, species: str | None,
                       instrument: str | None, collections: Iterable[str],
                       species_known: Iterable[str], instruments: Iterable[str],
                       store_url: str) -> None:
    """Refuse search terms nothing can match (case-insensitive), with the nearest known ones.

    ``collections`` are the product types the schemas define and those the store holds;
    ``species_known`` the species of the schemas and of the stored products; ``instruments``
    those of the stored products (unknown only when some are known: a store without any
    instrument answers an empty result).
    """
    collections = list(collections)
    if collection is not None and collection not in collections:
        raise _suggest("collection (product type)", collection, collections,
                       f"(neither a hubkit product type nor a collection in {store_url})")
    species_known = [s for s in species_known if s]
    if species is not None and species.lower() not in {s.lower() for s in species_known}:
        raise _suggest("species", species, species_known,
                       f"(no product type and no product in {store_url} has it)")
    instruments = [i for i in instruments if i]
    if instrument is not None and instruments and \
            instrument.lower() not in {i.lower() for i in instruments}:
        raise _suggest("instrument", instrument, instruments,
                       f"(no product in {store_url} was observed by it)")


def local_siblings(root: str) -> list[str]:
    """Names of the folders beside ``root`` (empty when its parent is not there)."""
    parent = os.path.dirname(root.rstrip(os.sep))
    try:
        with os.scandir(parent) as entries:
            return [e.name for e in entries if e.is_dir()]
    except OSError:
        return []
