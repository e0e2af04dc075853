"""Image features on device: what the app feeds (decoded pixels) and how validation rows get them.

Decoding PNG/JPEG has no TFLite built-in op (nor a TF.js op the converter keeps), so the
on-device model's image input is the decoded picture: float32 [batch, height, width, channels],
values 0..255, greyscale or RGB and resized as the preprocessing spec's ``pixels`` entry says.
The model applies Transform's scaling and per-channel standardization (built-in MUL, SUB, DIV)
and then the CNN. Validation rows hold both forms of every image: the pixels (``<column>``), for
the on-device model, and the encoded bytes (``<column>__encoded``), for the SavedModel's
``serving_raw`` signature, which decodes them itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from features import image as image_lib

IMAGE = "image"  # the on-device dtype of an image column in spec["columns"] (fed as pixels)
ENCODED_SUFFIX = "__encoded"


def encoded_key(column: str) -> str:
    return f"{column}{ENCODED_SUFFIX}"


def is_image(feature: dict[str, Any]) -> bool:
    return feature.get("type") == image_lib.IMAGE_TYPE


def image_features(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{raw column: feature} of the spec's image features."""
    return {f["source"]["column"]: f for f in spec["features"] if is_image(f)}


def raw_bytes(feature: Any) -> bytes:
    values = feature.bytes_list.value
    return bytes(values[0]) if values else b""


def rows_for(spec: dict[str, Any], column: str, encoded: list[bytes]) -> dict[str, np.ndarray]:
    """{column: float32 [n, H, W, C] pixels as the app feeds them, column__encoded: the bytes}."""
    d = image_features(spec)[column]["decode_image"]
    pixels = image_lib.decode_pixels(encoded, d["height"], d["width"], d["channels"], d["resize"])
    return {column: pixels, encoded_key(column): np.array(encoded, dtype=object)}


def spec_parts(feature: Any, value: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    return image_lib.spec_entry(feature, value)
