"""ImageExampleGen: a folder of image files -> tf.Examples (encoded bytes, label, size)."""

from typing import Any

__all__ = ["ImageExampleGen", "ImageFormatError"]


class ImageFormatError(ValueError):
    """An image file cannot be read or decoded, or the labels cannot be found; names the file."""


def __getattr__(name: str) -> Any:
    if name == "ImageExampleGen":
        from components.image_example_gen.component import ImageExampleGen

        return ImageExampleGen
    raise AttributeError(name)
