"""Build the sample bot's release archives: one per releases/<version>.json.

    python3 examples/samplebot/build.py [--out DIR]

Each archive holds src/ plus that release's release.json, and is byte-for-byte
reproducible (sorted names, fixed times and owners), so rebuilding changes nothing.
"""

import argparse
import glob
import gzip
import io
import json
import os
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "src")


def _add(tar, name, data, mode):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def build(release_file, out_dir):
    with open(release_file, encoding="utf-8") as f:
        release = json.load(f)
    path = os.path.join(out_dir, "samplebot-%s.tar.gz" % release["version"])
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(SOURCE):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                full = os.path.join(root, name)
                with open(full, "rb") as f:
                    _add(tar, os.path.relpath(full, SOURCE), f.read(), 0o644)
        _add(tar, "samplebot/release.json", json.dumps(release, indent=2).encode() + b"\n", 0o644)
    data = gzip.compress(raw.getvalue(), mtime=0)
    current = open(path, "rb").read() if os.path.exists(path) else None
    if current != data:
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "dist"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for release_file in sorted(glob.glob(os.path.join(HERE, "releases", "*.json"))):
        print(build(release_file, args.out))


if __name__ == "__main__":
    main()
