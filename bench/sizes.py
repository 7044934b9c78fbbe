"""Size of each release Lambda binary (the `bootstrap`) and of its deployment zip (the binary
renamed `bootstrap`, deflated, as cargo-lambda / `sam build` package it).

Usage: sizes.py --release-dir target/release --out FILE.json NAME...
"""

import argparse
import json
import tempfile
import zipfile
from pathlib import Path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("names", nargs="+")
    args = parser.parse_args()
    sizes = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.names:
            binary = Path(args.release_dir) / name
            archive = Path(scratch) / f"{name}.zip"
            with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zip_file:
                info = zipfile.ZipInfo("bootstrap")
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o755 << 16
                zip_file.writestr(info, binary.read_bytes())
            sizes[name] = {"bootstrap_bytes": binary.stat().st_size, "zip_bytes": archive.stat().st_size}
            print(
                f"  {name:20s} bootstrap {sizes[name]['bootstrap_bytes'] / 1e6:5.2f} MB, "
                f"zip {sizes[name]['zip_bytes'] / 1e6:5.2f} MB"
            )
    Path(args.out).write_text(json.dumps(sizes, indent=2))


if __name__ == "__main__":
    main()
