"""Which assets of real published STAC items are normalized by default, and how --assets names resolve on them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pystac
import pytest

from stacrrn.errors import InputError, ParameterError
from stacrrn.io.band_choice import carried_keys, choose_assets, default_asset_keys
from stacrrn.io.stac import BandRef, band_encoding, band_scaling, find_qa_asset, select_bands

CATALOGS = Path(__file__).parent.parent / "data" / "catalogs"

ES_2023 = "earth-search-sentinel-2-l2a-S2A_13TDE_20231008_0_L2A.json"
ES_2025 = "earth-search-sentinel-2-l2a-S2B_20EPT_20250731_0_L2A.json"
PC_S2 = (
    "planetary-computer-sentinel-2-l2a-S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json",
    "planetary-computer-sentinel-2-l2a-S2B_MSIL2A_20240419T095549_R122_T46XES_20240419T123824.json",
    "planetary-computer-sentinel-2-l2a-S2B_MSIL2A_20240419T095549_R122_T47XML_20240419T123458.json",
)
PC_LANDSAT = (
    "planetary-computer-landsat-c2-l2-LC09_L2SP_089087_20240417_02_T2.json",
    "planetary-computer-landsat-c2-l2-LC09_L2SP_089090_20240417_02_T1.json",
)
USGS_LANDSAT = (
    "usgs-landsatlook-landsat-c2l2-sr-LC08_L2SP_028030_20200114_20200824_02_T1_SR.json",
    "usgs-landsatlook-landsat-c2l2-sr-LC09_L2SP_092068_20230607_20230609_02_T1_SR.json",
)

ES_BANDS = ["blue", "coastal", "green", "nir", "nir08", "nir09", "red", "rededge1", "rededge2", "rededge3"]
ES_BANDS += ["swir16", "swir22"]
PC_S2_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B11", "B12", "B8A"]
PC_LANDSAT_BANDS = ["red", "blue", "green", "nir08", "swir16", "swir22", "coastal"]  # the items' asset order
USGS_LANDSAT_BANDS = ["coastal", "blue", "green", "red", "nir08", "swir16", "swir22"]
USGS_BETA = "usgs-landsatlook-landsat-c2l2-sr-LC08_L2SR_081119_20200101_20200823_02_T2.json"
USGS_BETA_BANDS = [f"SR_B{k}.TIF" for k in range(1, 8)]

DEFAULTS = {ES_2023: ES_BANDS, ES_2025: ES_BANDS}
DEFAULTS |= dict.fromkeys(PC_S2, PC_S2_BANDS)
DEFAULTS |= dict.fromkeys(PC_LANDSAT, PC_LANDSAT_BANDS)
DEFAULTS |= dict.fromkeys(USGS_LANDSAT, USGS_LANDSAT_BANDS)
DEFAULTS[USGS_BETA] = USGS_BETA_BANDS


def load(name: str) -> pystac.Item:
    with open(CATALOGS / name) as f:
        return pystac.Item.from_dict(json.load(f))


def kinds(item: pystac.Item) -> dict[str, str]:
    return {c.key: c.kind for c in choose_assets(item)}


def test_every_catalog_file_is_covered():
    assert sorted(p.name for p in CATALOGS.glob("*.json")) == sorted(DEFAULTS)


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_default_normalized_assets_of_real_items(name):
    item = load(name)
    assert default_asset_keys(item) == DEFAULTS[name]
    selection = select_bands([item])
    assert selection.bands == [BandRef(k, k, 1) for k in DEFAULTS[name]]
    assert selection.assets == {k: [pos] for pos, k in enumerate(DEFAULTS[name])}


@pytest.mark.parametrize("name", [ES_2023, ES_2025])
def test_earth_search_kinds(name):
    item = load(name)
    choices = {c.key: c for c in choose_assets(item)}
    expected = dict.fromkeys(ES_BANDS, "spectral") | {f"{k}-jp2": "alternate" for k in ES_BANDS}
    expected |= {"scl": "categorical", "aot": "auxiliary", "wvp": "auxiliary"}
    expected |= {"visual": "auxiliary", "visual-jp2": "auxiliary"}
    expected |= dict.fromkeys(["granule_metadata", "tileinfo_metadata", "thumbnail"], "not-raster")
    if name == ES_2025:
        expected |= {"cloud": "auxiliary", "snow": "auxiliary", "product_metadata": "not-raster"}
    # the JPEG 2000 copies of the non-spectral layers: never normalized (their kind is not pinned here)
    jp2_others = {"aot-jp2", "scl-jp2", "wvp-jp2"}
    assert set(choices) == set(expected) | jp2_others
    assert {k: c.kind for k, c in choices.items() if k not in jp2_others} == expected
    assert not any(choices[k].normalized for k in jp2_others)
    for band in ES_BANDS:
        assert choices[f"{band}-jp2"].alternate_of == band
        assert choices[f"{band}-jp2"].reason == f"alternate of {band!r} (image/jp2): the same bands"
        assert choices[band].alternate_of is None
    assert choices["visual"].reason == "role 'visual'"
    assert choices["scl"].reason == "class codes or quality bits (never normalized)"
    assert choices["thumbnail"].reason == "not a raster (image/jpeg)"
    assert choices["granule_metadata"].reason == "not a raster (application/xml)"
    assert choices["tileinfo_metadata"].reason == "not a raster (application/json)"
    if name == ES_2025:
        assert choices["cloud"].reason == "role 'cloud'"
        assert choices["snow"].reason == "role 'snow-ice'"


@pytest.mark.parametrize("name", PC_S2)
def test_planetary_computer_sentinel2_kinds(name):
    item = load(name)
    expected = dict.fromkeys(PC_S2_BANDS, "spectral") | {"SCL": "categorical"}
    expected |= dict.fromkeys(["AOT", "WVP", "visual", "preview"], "auxiliary")
    metadata = ["safe-manifest", "granule-metadata", "inspire-metadata", "product-metadata", "datastrip-metadata"]
    expected |= dict.fromkeys([*metadata, "tilejson", "rendered_preview"], "not-raster")
    assert kinds(item) == expected
    choices = {c.key: c for c in choose_assets(item)}
    # the true-colour image holds B04, B03, B02 again, but it has no roles that say so: known key
    assert choices["visual"].reason == "auxiliary layer (known key)"
    assert choices["preview"].reason == "role 'thumbnail'"
    assert choices["rendered_preview"].reason == "not a raster (image/png)"
    # B09 has no common name, only a centre wavelength: still spectral
    assert choices["B09"].reason == "spectral band (B09)"
    assert all(c.alternate_of is None for c in choices.values())


@pytest.mark.parametrize("name", PC_LANDSAT)
def test_planetary_computer_landsat_kinds(name):
    item = load(name)
    choices = {c.key: c for c in choose_assets(item)}
    expected = dict.fromkeys(PC_LANDSAT_BANDS, "spectral") | {"lwir11": "thermal"}
    expected |= dict.fromkeys(["qa_pixel", "qa_radsat", "qa_aerosol"], "categorical")
    expected |= dict.fromkeys(["drad", "emis", "emsd", "trad", "urad", "atran", "cdist"], "auxiliary")
    expected |= dict.fromkeys(["ang", "mtl.txt", "mtl.xml", "mtl.json", "tilejson", "rendered_preview"], "not-raster")
    # "qa" is the surface-temperature uncertainty (kelvin); only pinned as not normalized
    assert set(choices) == {*expected, "qa"}
    assert {k: c.kind for k, c in choices.items() if k != "qa"} == expected
    assert not choices["qa"].normalized
    assert choices["lwir11"].reason == "thermal band: name it in --assets to normalize it"
    assert choices["qa_pixel"].reason == "class codes or quality bits (never normalized)"
    assert choices["ang"].reason == "not a raster (text/plain)"


@pytest.mark.parametrize("name", USGS_LANDSAT)
def test_usgs_landsat_kinds(name):
    item = load(name)
    expected = dict.fromkeys(USGS_LANDSAT_BANDS, "spectral")
    expected |= dict.fromkeys(["qa_pixel", "qa_radsat", "qa_aerosol"], "categorical")
    metadata = ["thumbnail", "reduced_resolution_browse", "index", "ANG.txt", "MTL.txt", "MTL.xml", "MTL.json"]
    expected |= dict.fromkeys(metadata, "not-raster")
    assert kinds(item) == expected
    reasons = {c.key: c.reason for c in choose_assets(item)}
    # media type "image/vnd.stac.geotiff; cloud-optimized=true" is a raster
    assert reasons["red"] == "spectral band (red)"
    assert reasons["index"] == "not a raster (text/html)"


ES_2023_CARRIED = ["aot", "granule_metadata", "scl", "thumbnail", "tileinfo_metadata", "visual", "wvp"]
ES_2023_CARRIED += ["aot-jp2", "scl-jp2", "visual-jp2", "wvp-jp2"]
ES_2025_CARRIED = ["aot", "cloud", "granule_metadata", "product_metadata", "scl", "snow", "tileinfo_metadata"]
ES_2025_CARRIED += ["visual", "wvp", "thumbnail", "aot-jp2", "scl-jp2", "visual-jp2", "wvp-jp2"]
PC_S2_CARRIED = ["AOT", "SCL", "WVP", "visual", "preview", "safe-manifest", "granule-metadata", "inspire-metadata"]
PC_S2_CARRIED += ["product-metadata", "datastrip-metadata", "tilejson", "rendered_preview"]
PC_LANDSAT_CARRIED = ["qa", "ang", "drad", "emis", "emsd", "trad", "urad", "atran", "cdist", "lwir11", "mtl.txt"]
PC_LANDSAT_CARRIED += ["mtl.xml", "mtl.json", "qa_pixel", "qa_radsat", "qa_aerosol", "tilejson", "rendered_preview"]
USGS_LC08_CARRIED = ["thumbnail", "reduced_resolution_browse", "index", "qa_aerosol", "ANG.txt", "MTL.txt"]
USGS_LC08_CARRIED += ["MTL.xml", "MTL.json", "qa_pixel", "qa_radsat"]
USGS_LC09_CARRIED = ["thumbnail", "reduced_resolution_browse", "index", "MTL.json", "qa_aerosol", "qa_pixel"]
USGS_LC09_CARRIED += ["qa_radsat", "ANG.txt", "MTL.txt", "MTL.xml"]
CARRIED = {ES_2023: ES_2023_CARRIED, ES_2025: ES_2025_CARRIED}
CARRIED |= dict.fromkeys(PC_S2, PC_S2_CARRIED) | dict.fromkeys(PC_LANDSAT, PC_LANDSAT_CARRIED)
CARRIED |= {USGS_LANDSAT[0]: USGS_LC08_CARRIED, USGS_LANDSAT[1]: USGS_LC09_CARRIED}


@pytest.mark.parametrize("name", sorted(CARRIED))
def test_carried_keys_are_all_but_the_normalized_assets_and_their_alternates(name):
    item = load(name)
    assert carried_keys(item, DEFAULTS[name]) == CARRIED[name]


def test_carried_keys_of_a_partial_selection():
    es = load(ES_2025)
    rest = [k for k in es.assets if k not in {"red", "red-jp2", "nir", "nir-jp2"}]
    assert carried_keys(es, ["red", "nir"]) == rest
    # normalizing the JPEG 2000 copy drops the COG too: it would offer the uncorrected red
    assert carried_keys(es, ["red-jp2", "nir"]) == rest
    landsat = load(PC_LANDSAT[0])
    assert carried_keys(landsat, [*PC_LANDSAT_BANDS, "lwir11"]) == [k for k in PC_LANDSAT_CARRIED if k != "lwir11"]


def test_common_names_resolve_to_the_cloud_optimized_band_not_an_alternate_or_the_visual_image():
    es = load(ES_2023)
    assert select_bands([es], ["red"]).bands == [BandRef("red", "red", 1)]
    es_new = load(ES_2025)
    # here band names are B01..B12: the name and the common name both find the COG
    assert select_bands([es_new], ["red", "B05", "B8A"]).bands == [
        BandRef("red", "red", 1),
        BandRef("B05", "rededge1", 1),
        BandRef("B8A", "nir08", 1),
    ]
    pc = [load(n) for n in PC_S2]
    assert select_bands(pc, ["red", "nir", "coastal", "B05"]).bands == [
        BandRef("red", "B04", 1),
        BandRef("nir", "B08", 1),
        BandRef("coastal", "B01", 1),
        BandRef("B05", "B05", 1),
    ]
    landsat = load(PC_LANDSAT[1])
    assert select_bands([landsat], ["OLI_B4", "TIRS_B10"]).bands == [
        BandRef("OLI_B4", "red", 1),
        BandRef("TIRS_B10", "lwir11", 1),
    ]


def test_an_ambiguous_common_name_lists_the_bands_it_matches():
    # Planetary Computer labels B8A (0.865 um) "rededge", like B05, B06 and B07
    pc = load(PC_S2[2])
    rededge = [
        k for k, a in pc.assets.items() for b in a.extra_fields.get("eo:bands", []) if b.get("common_name") == "rededge"
    ]
    assert rededge == ["B05", "B06", "B07", "B8A"]
    with pytest.raises(ParameterError) as err:
        select_bands([pc], ["rededge"])
    assert str(err.value) == f"--assets 'rededge' matches B05, B06, B07, B8A of item {pc.id}: name one"
    es = load(ES_2025)
    with pytest.raises(ParameterError) as err:
        select_bands([es], ["rededge"])
    assert str(err.value) == f"--assets 'rededge' matches rededge1, rededge2, rededge3 of item {es.id}: name one"


def test_a_name_no_band_has_lists_the_spectral_assets():
    pc = load(PC_S2[0])
    with pytest.raises(ParameterError) as err:
        select_bands([pc], ["nir08"])  # PC calls B8A "rededge"
    assert str(err.value) == (
        f"--assets 'nir08' is neither an asset key nor a band name of item {pc.id}; "
        f"its spectral assets are {', '.join(PC_S2_BANDS)}"
    )


@pytest.mark.parametrize(("name", "key"), [(ES_2023, "scl"), (PC_S2[1], "SCL"), (PC_LANDSAT[0], "qa_pixel")])
def test_categorical_assets_are_refused_even_when_named(name, key):
    item = load(name)
    for asked in (key, f"{key}.1"):
        with pytest.raises(ParameterError) as err:
            select_bands([item], [asked])
        assert str(err.value) == (
            f"--assets {asked!r}: asset {key!r} of item {item.id} holds class codes or quality bits, "
            "which are never normalized (they are carried over unchanged)"
        )


def test_the_jpeg2000_copy_of_the_scene_classification_is_refused_too():
    with pytest.raises(ParameterError, match="class codes"):
        select_bands([load(ES_2025)], ["scl-jp2"])


def test_thermal_and_auxiliary_assets_are_taken_when_named():
    landsat = load(PC_LANDSAT[0])
    assert select_bands([landsat], ["red", "lwir11"]).bands == [
        BandRef("red", "red", 1),
        BandRef("lwir11", "lwir11", 1),
    ]
    es = load(ES_2025)
    selection = select_bands([es], ["cloud", "visual.2"])
    assert selection.bands == [BandRef("cloud", "cloud", 1), BandRef("visual.2", "visual", 2)]
    assert selection.assets == {"cloud": [0], "visual": [1]}


def test_band_encodings_of_real_items():
    red = load(ES_2023).assets["red"]
    assert band_encoding(red, 1) == {"scale": 0.0001, "offset": -0.1, "spatial_resolution": 10}
    assert band_scaling(red, 1) == (0.0001, -0.1)
    assert band_scaling(load(ES_2025).assets["aot"], 1) == (0.001, 0.0)
    landsat = load(PC_LANDSAT[1])
    assert band_encoding(landsat.assets["red"], 1) == {"scale": 2.75e-05, "offset": -0.2, "spatial_resolution": 30}
    assert band_scaling(landsat.assets["red"], 1) == (2.75e-05, -0.2)
    assert band_encoding(landsat.assets["lwir11"], 1) == {
        "scale": 0.00341802,
        "offset": 149.0,
        "unit": "kelvin",
        "spatial_resolution": 30,
    }
    b04 = load(PC_S2[2]).assets["B04"]  # Planetary Computer publishes no raster:bands
    assert band_encoding(b04, 1) == {}
    assert band_scaling(b04, 1) is None


def synthetic_item(assets: dict[str, pystac.Asset], item_id: str = "synthetic") -> pystac.Item:
    item = pystac.Item(
        item_id,
        {"type": "Point", "coordinates": [10.0, 45.0]},
        [10.0, 45.0, 10.0, 45.0],
        dt.datetime(2024, 5, 1, tzinfo=dt.UTC),
        {},
    )
    for key, asset in assets.items():
        item.add_asset(key, asset)
    return item


TIFF = "image/tiff; application=geotiff; profile=cloud-optimized"


def test_without_spectral_descriptions_every_raster_data_asset_is_chosen():
    item = synthetic_item(
        {
            "b1": pystac.Asset("b1.tif", media_type=TIFF, roles=["data"], extra_fields={"eo:bands": [{"name": "b1"}]}),
            "b2": pystac.Asset("sub/b2.TIF?sig=x"),  # no media type, no roles, no bands: a raster by its name
            "b3": pystac.Asset("b3.jp2", media_type="image/jp2"),
            "scl": pystac.Asset("scl.tif", media_type=TIFF, roles=["data"]),
            "overview": pystac.Asset("ov.tif", media_type=TIFF, roles=["overview"]),
            "thumb": pystac.Asset("t.png", media_type="image/png"),
            "meta": pystac.Asset("m.xml", media_type="application/xml"),
            "notes": pystac.Asset("notes.txt"),
        }
    )
    assert kinds(item) == {
        "b1": "spectral",
        "b2": "spectral",
        "b3": "spectral",
        "scl": "categorical",
        "overview": "auxiliary",
        "thumb": "not-raster",
        "meta": "not-raster",
        "notes": "not-raster",
    }
    assert {c.key: c.reason for c in choose_assets(item)}["b2"] == "raster data"
    assert default_asset_keys(item) == ["b1", "b2", "b3"]
    # an asset described by nothing takes its band count from the file header
    assert select_bands([item], counts={"b2": 3}).labels == ["b1", "b2.1", "b2.2", "b2.3", "b3"]
    assert carried_keys(item, ["b1", "b2", "b3"]) == ["scl", "overview", "thumb", "meta", "notes"]


def test_stac_1_1_bands_are_read():
    bands = [
        {"name": "B4", "eo:common_name": "red", "raster:scale": 0.0001, "raster:offset": -0.1, "unit": "1"},
        {"name": "B8", "eo:center_wavelength": 0.842, "raster:scale": 0.0002, "raster:offset": 0},
    ]
    item = synthetic_item(
        {
            "reflectance": pystac.Asset("r.tif", media_type=TIFF, roles=["data"], extra_fields={"bands": bands}),
            "reflectance-jp2": pystac.Asset(
                "r.jp2", media_type="image/jp2", roles=["data"], extra_fields={"bands": bands}
            ),
            "mask": pystac.Asset("m.tif", media_type=TIFF, roles=["data"], extra_fields={"bands": [{"name": "m"}]}),
            "tir": pystac.Asset(
                "t.tif",
                media_type=TIFF,
                roles=["data"],
                extra_fields={"bands": [{"name": "B10", "eo:center_wavelength": 10.9}]},
            ),
            "bits": pystac.Asset(
                "q.tif",
                media_type=TIFF,
                roles=["data"],
                extra_fields={"bands": [{"name": "q", "classification:bitfields": [{"offset": 0, "length": 1}]}]},
            ),
        }
    )
    choices = {c.key: c for c in choose_assets(item)}
    assert {k: c.kind for k, c in choices.items()} == {
        "reflectance": "spectral",
        "reflectance-jp2": "alternate",
        "mask": "undescribed",
        "tir": "thermal",
        "bits": "categorical",
    }
    assert choices["reflectance-jp2"].alternate_of == "reflectance"
    assert choices["reflectance"].reason == "spectral band (red, B8)"
    assert select_bands([item]).bands == [
        BandRef("reflectance.1", "reflectance", 1),
        BandRef("reflectance.2", "reflectance", 2),
    ]
    assert select_bands([item], ["red", "B8", "B10"]).bands == [
        BandRef("red", "reflectance", 1),
        BandRef("B8", "reflectance", 2),
        BandRef("B10", "tir", 1),
    ]
    asset = item.assets["reflectance"]
    assert band_encoding(asset, 1) == {"scale": 0.0001, "offset": -0.1, "unit": "1"}
    assert band_encoding(asset, 2) == {"scale": 0.0002, "offset": 0}
    assert band_scaling(asset, 1) == (0.0001, -0.1)
    assert band_scaling(asset, 2) == (0.0002, 0.0)
    assert band_encoding(asset, 3) == {}
    # the classification extension marks a layer categorical whatever its key
    with pytest.raises(ParameterError, match="holds class codes or quality bits"):
        select_bands([item], ["bits"])


def test_an_item_without_spectral_assets_needs_named_bands():
    item = synthetic_item(
        {
            "scl": pystac.Asset("scl.tif", media_type=TIFF, roles=["data"]),
            "visual": pystac.Asset("v.tif", media_type=TIFF, roles=["visual"]),
            "thumbnail": pystac.Asset("t.png", media_type="image/png", roles=["thumbnail"]),
        },
        "empty-item",
    )
    assert default_asset_keys(item) == []
    with pytest.raises(InputError) as err:
        select_bands([item])
    assert not isinstance(err.value, ParameterError)
    assert str(err.value) == (
        "item empty-item has no spectral reflectance asset to normalize (scl: class codes or quality bits "
        "(never normalized); visual: role 'visual'; thumbnail: not a raster (image/png)); choose bands with --assets"
    )
    assert select_bands([item], ["visual.1"]).bands == [BandRef("visual.1", "visual", 1)]


def test_of_several_encodings_of_the_same_band_the_cloud_optimized_geotiff_is_read_whatever_the_order():
    red = {"eo:bands": [{"name": "B04", "common_name": "red", "center_wavelength": 0.665}]}
    item = synthetic_item(
        {
            "red_j2k": pystac.Asset("red.jp2", media_type="image/jp2", roles=["data"], extra_fields=red),
            "red_tiff": pystac.Asset("red_plain.tif", media_type="image/tiff", roles=["data"], extra_fields=red),
            "red_cog": pystac.Asset("red.tif", media_type=TIFF, roles=["data"], extra_fields=red),
        }
    )
    choices = {c.key: (c.kind, c.alternate_of) for c in choose_assets(item)}
    assert choices == {
        "red_j2k": ("alternate", "red_cog"),
        "red_tiff": ("alternate", "red_cog"),
        "red_cog": ("spectral", None),
    }
    assert select_bands([item], ["red"]).bands == [BandRef("red", "red_cog", 1)]
    assert select_bands([item], ["B04"]).bands == [BandRef("B04", "red_cog", 1)]
    assert carried_keys(item, ["red_cog"]) == []


def test_a_usgs_item_from_before_stac_1_0_without_roles():
    """STAC 1.0.0-beta.2 USGS layout: no roles, ``.TIF`` keys, asset ``eo:bands`` as indices into the item's."""
    item = load(USGS_BETA)
    expected = dict.fromkeys(USGS_BETA_BANDS, "spectral")
    expected |= dict.fromkeys(["QA_PIXEL.TIF", "QA_RADSAT.TIF", "SR_QA_AEROSOL.TIF"], "categorical")
    expected |= dict.fromkeys(["thumbnail", "reduced_resolution_browse", "index"], "not-raster")
    expected |= dict.fromkeys(["ANG.txt", "MTL.txt", "MTL.xml", "MTL.json"], "not-raster")
    assert kinds(item) == expected
    assert find_qa_asset(item) == ("QA_PIXEL.TIF", "qa_pixel")
    selection = select_bands([item], ["red", "SR_B5"])  # a common name and a band name, through the indices
    assert [(b.asset, b.index) for b in selection.bands] == [("SR_B4.TIF", 1), ("SR_B5.TIF", 1)]
    with pytest.raises(ParameterError, match="class codes"):
        select_bands([item], ["QA_PIXEL.TIF"])
