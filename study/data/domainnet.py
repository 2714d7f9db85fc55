"""DomainNet, the 40-class subset of SENTRY that Kumar et al. use: sketch (ID) -> real, painting, clipart (OOD).

Layout under the data root::

    domainnet/<domain>/<class>/<file>.jpg                 the official release (one zip per domain)
    domainnet/SENTRY_splits/<domain>_{train,test}_mini.txt  lines "<domain>/<class>/<file>.jpg <label>"

Labels come from the split files, not from sorted folder names (the 40-class labels are not alphabetical). ID val
is held out of sketch's train list; each OOD domain's train list is its (oracle) val split, its test list its test.
"""
from __future__ import annotations

from pathlib import Path

from study.data.benchmark import ID_TEST, ID_VAL, TRAIN, Benchmark
from study.data.files import (DataError, ImageFiles, holdout, id_val_size, on_disk_fingerprint, require,
                              resolve_data_root)
from study.data.registry import register_benchmark

SOURCE = ("http://ai.bu.edu/M3SDA/ (domain zips) and github.com/virajprabhu/SENTRY (data/DomainNet/txt/*_mini.txt, "
          "into domainnet/SENTRY_splits/)")
ID_DOMAIN, OOD_DOMAINS = "sketch", ("real", "painting", "clipart")


def read_split(root: Path, domain: str, split: str) -> tuple[ImageFiles, dict[int, str]]:
    """One split list as images, and the class name of every label it uses (the folder above each file)."""
    listing = require(root / "SENTRY_splits" / f"{domain}_{split}_mini.txt", "a SENTRY split list", SOURCE)
    paths, labels, names = [], [], {}
    for number, line in enumerate(listing.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise DataError(f"{listing}:{number}: expected '<path> <label>', got {line!r}; get the lists from {SOURCE}")
        paths.append(root / parts[0])
        labels.append(int(parts[1]))
        names.setdefault(int(parts[1]), Path(parts[0]).parent.name)
    missing = [path for path in paths if not path.is_file()]
    if missing:
        raise DataError(f"{missing[0]}: not found ({len(missing)} of the {len(paths)} images in {listing.name} are "
                        f"missing); get the domain's images from {SOURCE}")
    return ImageFiles(paths, labels), names


@register_benchmark("domainnet")
def domainnet(*, cache_dir=None, data_root=None) -> Benchmark:
    root = require(resolve_data_root(data_root) / "domainnet", "DomainNet's domain folders", SOURCE)
    train_all, names = read_split(root, ID_DOMAIN, "train")
    train, id_val = holdout(train_all, id_val_size(len(train_all)))
    splits = {TRAIN: train, ID_VAL: id_val, ID_TEST: read_split(root, ID_DOMAIN, "test")[0]}
    for domain in OOD_DOMAINS:
        splits[f"{domain}_val"] = read_split(root, domain, "train")[0]
        splits[f"{domain}_test"] = read_split(root, domain, "test")[0]
    if sorted(names) != list(range(len(names))):
        raise DataError(f"{root / 'SENTRY_splits'}: sketch's labels are {sorted(names)}, not 0..{len(names) - 1}; "
                        f"get the lists from {SOURCE}")
    return Benchmark(name="domainnet", classes=tuple(names[i] for i in range(len(names))),
                     ood_domains=OOD_DOMAINS, splits=splits,
                     fingerprint=on_disk_fingerprint("domainnet", root, splits), source=str(root))
