"""Download SAM2.1 checkpoints into this folder (standard library only).

    python checkpoints/download.py tiny [small base_plus large | all] [--dest DIR]

Downloads are resumable: bytes go to ``<file>.part`` and an interrupted download
continues from where it stopped (HTTP Range). A finished file must have exactly the
size the server announced; only then is it renamed into place.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request

BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
FILES = {
    "tiny": "sam2.1_hiera_tiny.pt",
    "small": "sam2.1_hiera_small.pt",
    "base_plus": "sam2.1_hiera_base_plus.pt",
    "large": "sam2.1_hiera_large.pt",
}
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    pass


def remote_size(url: str) -> int:
    req = urllib.request.Request(url, method="HEAD")
    with urllib.request.urlopen(req, timeout=60) as resp:
        length = resp.headers.get("Content-Length")
    if length is None:
        raise DownloadError(f"{url}: the server did not say how large the file is")
    return int(length)


def download(url: str, dest: str, progress=None) -> str:
    """Fetch ``url`` to ``dest`` (resuming ``dest.part``); returns ``dest``."""
    total = remote_size(url)
    if os.path.isfile(dest) and os.path.getsize(dest) == total:
        return dest
    part = dest + ".part"
    have = os.path.getsize(part) if os.path.isfile(part) else 0
    if have > total:
        os.remove(part)
        have = 0
    if have < total:
        req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        with urllib.request.urlopen(req, timeout=60) as resp:
            if have and resp.status != 206:  # server ignored the range: start over
                have = 0
            with open(part, "ab" if have else "wb") as f:
                while chunk := resp.read(CHUNK):
                    f.write(chunk)
                    have += len(chunk)
                    if progress:
                        progress(have, total)
    size = os.path.getsize(part)
    if size != total:
        raise DownloadError(
            f"{part}: got {size} bytes, expected {total}; run the command again to resume"
        )
    os.replace(part, dest)
    return dest


def _bar(name: str):
    def show(have: int, total: int) -> None:
        pct = 100 * have / total
        sys.stderr.write(f"\r{name}: {have / 2**20:8.1f} / {total / 2**20:.1f} MiB ({pct:5.1f}%)")
        if have >= total:
            sys.stderr.write("\n")

    return show


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("sizes", nargs="+", choices=[*FILES, "all"])
    p.add_argument("--dest", default=os.path.dirname(os.path.abspath(__file__)))
    p.add_argument("--base-url", default=BASE_URL, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    sizes = list(FILES) if "all" in args.sizes else args.sizes
    os.makedirs(args.dest, exist_ok=True)
    for size in sizes:
        name = FILES[size]
        try:
            path = download(args.base_url + name, os.path.join(args.dest, name), _bar(name))
        except (urllib.error.URLError, OSError, DownloadError) as err:
            print(f"error: downloading {name} failed: {err}", file=sys.stderr)
            return 1
        print(f"{size}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
