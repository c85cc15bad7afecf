"""Image preparation for LINE: how long `kairand.delivery.images.prepare` takes to
check, strip (EXIF/GPS) and re-encode a phone photo and make its <= 1 MB preview, against the
anchor of a plain Pillow decode + JPEG re-encode of the same picture (the least any stripping
re-encoder must do). Also the sizes it produces against LINE's limits (10 MB, 1 MB).

    .venv/bin/python bench/images.py            # 12 MP and 48 MP photos, 5 runs each
    .venv/bin/python bench/images.py --quick    # 12 MP, 3 runs

The photos are synthetic but photo-like (smooth gradients plus sensor-like noise, with EXIF
GPS), generated deterministically.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import time

from PIL import Image

from kairand.delivery.images import MAX_ORIGINAL_BYTES, MAX_PREVIEW_BYTES, prepare


def photo(width: int, height: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    base = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    noise = Image.frombytes("L", (width, height), rng.randbytes(width * height)).convert("RGB")
    picture = Image.blend(base, noise, 0.15)
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (35.0, 41.0, 22.5), 3: "E", 4: (139.0, 41.0, 30.1)}
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=92, exif=exif.tobytes())
    return out.getvalue()


def anchor(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        out = io.BytesIO()
        image.convert("RGB").save(out, "JPEG", quality=90)
        return out.getvalue()


def timed(fn, data: bytes, runs: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn(data)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="12 MP only, 3 runs (< 1 min)")
    args = parser.parse_args()
    sizes = [(4000, 3000)] if args.quick else [(4000, 3000), (8000, 6000)]
    runs = 3 if args.quick else 5
    fields = []
    for width, height in sizes:
        data = photo(width, height)
        prepared = prepare(data, 64 * 1024 * 1024)
        ours = timed(lambda d: prepare(d, 64 * 1024 * 1024), data, runs)
        base = timed(anchor, data, runs)
        tag = f"{width * height // 1_000_000}mp"
        print(
            f"{tag}: input {len(data) / 1e6:.1f} MB -> original {len(prepared.original) / 1e6:.2f}"
            f" MB ({prepared.width}x{prepared.height}), preview {len(prepared.preview) / 1e3:.0f}"
            f" kB; prepare {ours:.2f} s, anchor (decode + re-encode) {base:.2f} s",
            flush=True,
        )
        assert len(prepared.original) <= MAX_ORIGINAL_BYTES
        assert len(prepared.preview) <= MAX_PREVIEW_BYTES
        fields += [
            f"prepare_s_{tag}={ours:.2f}",
            f"ratio_vs_reencode_{tag}={ours / base:.2f}",
            f"original_mb_{tag}={len(prepared.original) / 1e6:.2f}",
            f"preview_kb_{tag}={len(prepared.preview) / 1e3:.0f}",
        ]
    print("BENCH images " + " ".join(fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())
