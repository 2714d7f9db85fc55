"""FMoW-WILDS by region, as Kumar et al. split it: the Americas (ID) -> Africa and Europe (OOD).

Layout under the data root (the WILDS release, as ``wilds`` downloads it)::

    fmow_v1.1/rgb_metadata.csv          one row per image: split, category, country_code, timestamp, ...
    fmow_v1.1/country_code_mapping.csv  alpha-3 country code -> region
    fmow_v1.1/images/rgb_img_<row>.png  <row> is the image's row in rgb_metadata.csv

WILDS' time split gives the years: train, ID val and ID test are before 2013; OOD val is 2013-2015 and OOD test
2016 on. Within it: ID = the Americas' train / ID val / ID test; each OOD region's val (the oracle's) and test.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from study.data.benchmark import ID_TEST, ID_VAL, TRAIN, Benchmark
from study.data.files import DataError, ImageFiles, damaged, on_disk_fingerprint, reading, require, resolve_data_root
from study.data.registry import register_benchmark

SOURCE = "the WILDS package: wilds.get_dataset('fmow', root_dir=DATA_ROOT, download=True) (https://wilds.stanford.edu)"
ID_REGION, OOD_REGIONS = "Americas", ("Africa", "Europe")
COLUMNS = {"split", "category", "country_code", "timestamp"}


def read_metadata(folder: Path) -> pd.DataFrame:
    """The metadata with each image's path, year, region and WILDS split (train, id_val, id_test, val, test)."""
    metadata = read_table(require(folder / "rgb_metadata.csv", "FMoW's metadata", SOURCE), "FMoW metadata file",
                          COLUMNS)
    mapping = read_table(require(folder / "country_code_mapping.csv", "FMoW's country-to-region table", SOURCE),
                         "FMoW country-to-region file", {"alpha-3", "region"})
    regions = dict(zip(mapping["alpha-3"], mapping["region"]))
    metadata["path"] = [folder / "images" / f"rgb_img_{row}.png" for row in metadata.index]
    metadata["region"] = metadata["country_code"].map(regions).fillna("Other")
    metadata["year"] = pd.to_datetime(metadata["timestamp"], format="ISO8601", utc=True).dt.year
    before, after = metadata["year"] < 2013, metadata["year"] >= 2016
    metadata["wilds_split"] = None
    metadata.loc[(metadata["split"] == "train") & before, "wilds_split"] = TRAIN
    metadata.loc[(metadata["split"] == "val") & before, "wilds_split"] = ID_VAL
    metadata.loc[(metadata["split"] == "test") & before, "wilds_split"] = ID_TEST
    metadata.loc[(metadata["split"] == "val") & ~before & ~after, "wilds_split"] = "ood_val"
    metadata.loc[(metadata["split"] == "test") & after, "wilds_split"] = "ood_test"
    return metadata


def read_table(csv: Path, what: str, columns: set[str]) -> pd.DataFrame:
    """A CSV of the release, with rows and at least ``columns`` (a copy cut short in its header has neither)."""
    with reading(csv, what, SOURCE):
        table = pd.read_csv(csv)
    if not columns <= set(table.columns):
        raise damaged(csv, what, f"its columns {sorted(table.columns)} lack {sorted(columns - set(table.columns))}",
                      SOURCE)
    if table.empty:
        raise damaged(csv, what, "no rows", SOURCE)
    return table


@register_benchmark("fmow")
def fmow(*, cache_dir=None, data_root=None) -> Benchmark:
    folder = require(resolve_data_root(data_root) / "fmow_v1.1", "the WILDS FMoW release", SOURCE)
    metadata = read_metadata(folder)
    classes = sorted(metadata["category"].unique())

    def images(region: str, split: str) -> ImageFiles:
        rows = metadata[(metadata["region"] == region) & (metadata["wilds_split"] == split)]
        if rows.empty:
            raise DataError(f"{folder / 'rgb_metadata.csv'}: no {split} images from {region}; get the full release "
                            f"from {SOURCE}")
        return ImageFiles(list(rows["path"]), [classes.index(c) for c in rows["category"]])

    splits = {split: images(ID_REGION, split) for split in (TRAIN, ID_VAL, ID_TEST)}
    for region in OOD_REGIONS:
        splits[f"{region.lower()}_val"] = images(region, "ood_val")
        splits[f"{region.lower()}_test"] = images(region, "ood_test")
    return Benchmark(name="fmow", classes=tuple(classes), ood_domains=tuple(r.lower() for r in OOD_REGIONS),
                     splits=splits,
                     fingerprint=on_disk_fingerprint("fmow", folder, splits), source=str(folder))
