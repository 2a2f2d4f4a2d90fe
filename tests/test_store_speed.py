"""What the store's fast paths must keep: the same Items, the same bytes, the same checks."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pystac
from test_store import soundings

from hubkit.store import Store
from hubkit.store.items import item_from_dict


def _stored_dicts(store: Store) -> list[dict]:
    return [json.loads(store.fs.cat_file(path)) for path in store._list_item_paths().values()]


def test_items_read_back_equal_pystacs_own(tmp_path):
    """item_from_dict builds the Item pystac's from_dict builds, field for field."""
    store = Store(str(tmp_path / "s"))
    store.put(soundings(), inputs=["a"], step="test")
    for d in _stored_dicts(store):
        ours = item_from_dict(json.loads(json.dumps(d)))
        theirs = pystac.Item.from_dict(json.loads(json.dumps(d)), migrate=False)
        assert isinstance(ours, pystac.Item)
        assert ours.to_dict(include_self_link=False, transform_hrefs=False) == \
            theirs.to_dict(include_self_link=False, transform_hrefs=False)
        assert ours.datetime == theirs.datetime and ours.collection_id == theirs.collection_id


def test_an_item_with_extensions_still_goes_through_pystac(tmp_path):
    """An Item that declares extensions is read by pystac itself, its hooks included: a
    deprecated version-extension Item still warns."""
    store = Store(str(tmp_path / "s"))
    store.put(soundings(), inputs=["a"], step="test")
    d = _stored_dicts(store)[0]
    d["stac_extensions"] = ["https://stac-extensions.github.io/version/v1.2.0/schema.json"]
    d["properties"]["deprecated"] = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        item = item_from_dict(d)
    assert item.stac_extensions == d["stac_extensions"]
    assert any(issubclass(w.category, pystac.DeprecatedWarning) for w in caught)


def test_reading_items_does_not_load_pystacs_extension_modules(tmp_path):
    """pystac discovers its 21 extension modules (entry points, imports: ~60 ms of CPU) the
    first time from_dict meets an Item; the store's Items declare no extension, which none of
    those hooks can then deprecate, so reading them must not pay for it."""
    code = f"""
import sys
from hubkit.store import Store
sys.path.insert(0, "tests")
from test_store import soundings
store = Store({str(tmp_path / "s")!r})
item = store.put(soundings(), inputs=["a"], step="test")
assert store.get_item(item.id).id == item.id
assert [i.id for i in store.search("oco2-soundings")] == [item.id]
print(sorted(m for m in sys.modules if m.startswith("pystac.extensions.")))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=str(Path(__file__).parents[1]))
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"'))
    assert loaded == ["pystac.extensions.base", "pystac.extensions.hooks"]


def test_a_product_read_whole_equals_the_lazy_open_computed(tmp_path, shared_data):
    """Reading whole (decoded once, text made Python ``str`` objects once, then copied per
    open) gives what the lazy open gives once computed: values, dtypes, attributes; text
    variables are ``object`` without the Zarr encoding, as ``astype(object)`` leaves them."""
    import numpy as np
    import xarray as xr

    from hubkit import ingest

    store = Store(str(tmp_path / "s"))
    item = ingest.upload(store, shared_data / "real" / "ch4_bao_tower-insitu_1_ccgg_all.nc")
    lazy = store.open(item).compute()
    for _ in range(2):  # the first decodes, the second reads the kept decoding
        whole = store.open(item, load=True)
        xr.testing.assert_identical(whole, lazy)
        for name in ("qc_flag", "instrument", "obspack_id"):
            assert whole[name].dtype == object and lazy[name].dtype == object
            assert whole[name].encoding == lazy[name].encoding == {}
            assert isinstance(whole[name].values[0], str)
        whole["qc_flag"].values[0] = "changed"  # a copy of its own: the next open is intact
        whole.attrs["site_code"] = "changed"
    assert np.array_equal(store.open(item, load=True)["qc_flag"].values, lazy["qc_flag"].values)
