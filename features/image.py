"""Image features: the TensorFlow side of the image steps, the Conv2D model and augmentation.

A feature of ``type: image`` starts as the encoded bytes ExampleGen wrote (PNG, JPEG, GIF or BMP)
and goes through:

* ``decode_image: {height, width, channels, resize}``: ``tf.io.decode_image`` (first frame,
  ``expand_animations=False``) to ``channels`` (1: greyscale by TF's ITU-R 601 luma, 3: RGB),
  resized to height x width (``tf.image.resize``, bilinear by default; an image already of that
  size is not touched), scaled to [0, 1] (times 1/255).
* ``per_channel_standardize``: (x - mean) / std per channel, mean and std of all train pixels
  (tf.Transform analyzers, recorded as fitted ``mean`` / ``std`` [channels] like every fitted
  parameter, so the on-device spec reads Transform's numbers).

The output is the IMAGE kind: float32 [height, width, channels]. TensorFlow is imported lazily:
config validation imports this module.
"""

from __future__ import annotations

from typing import Any

# The config's feature type and the column kind (dense float32 [height, width, channels]): one name.
IMAGE = "image"  # an image feature's type and its transformed kind
IMAGE_TYPE = IMAGE
RESIZE_METHODS = ("bilinear", "nearest", "area")
IMAGE_STEPS = ("decode_image", "per_channel_standardize")
SCALE = 1.0 / 255.0
# The raw columns ImageExampleGen writes (components/image_example_gen).
IMAGE_COLUMN, LABEL_COLUMN, SIZE_COLUMNS = "image", "label", ("height", "width", "channels")


def decode_args(steps: list[tuple[str, dict]] | tuple) -> dict[str, Any]:
    """The decode_image step's arguments with defaults filled in."""
    for name, args in steps:
        if name == "decode_image":
            return {"height": args["height"], "width": args["width"], "channels": args.get("channels", 1),
                    "resize": args.get("resize", "bilinear")}
    raise ValueError("an image feature needs a decode_image step")


def check(value_type: str, steps: list[tuple[str, dict]]) -> list[str]:
    """Problems specific to image features (feature_steps.check_steps checks arguments and kinds)."""
    names = [s for s, _ in steps]
    if value_type != IMAGE_TYPE:
        bad = [n for n in names if n in IMAGE_STEPS]
        return [f"step '{bad[0]}' applies to image features (type: image) only"] if bad else []
    if not names or names[0] != "decode_image":
        return ["an image feature starts with decode_image: {height, width, channels}"]
    others = [n for n in names if n not in IMAGE_STEPS]
    if others:
        return [f"step '{others[0]}' does not apply to image features; image steps: {', '.join(IMAGE_STEPS)}"]
    if names.count("decode_image") > 1 or names.count("per_channel_standardize") > 1:
        return ["decode_image and per_channel_standardize may appear once each"]
    return []


def output_shape(steps: list[tuple[str, dict]] | tuple) -> tuple[int, int, int]:
    a = decode_args(steps)
    return (a["height"], a["width"], a["channels"])


# ================================================================ Transform ==
def decode(encoded: Any, present: Any, height: int, width: int, channels: int, resize: str = "bilinear",
           scale: bool = True) -> Any:
    """[batch] encoded images -> float32 [batch, height, width, channels] in [0, 1] (``scale``; else
    0..255 as decoded and resized); a missing image (empty bytes) is all zeros."""
    import tensorflow as tf

    def one(args: Any) -> Any:
        data, ok = args

        def decoded() -> Any:
            img = tf.cast(tf.io.decode_image(data, channels=channels, expand_animations=False), tf.float32)
            same = tf.logical_and(tf.equal(tf.shape(img)[0], height), tf.equal(tf.shape(img)[1], width))
            img = tf.cond(same, lambda: img, lambda: tf.image.resize(img, [height, width], method=resize))
            return tf.reshape(img, [height, width, channels])

        return tf.cond(ok, decoded, lambda: tf.zeros([height, width, channels], tf.float32))

    pixels = tf.map_fn(one, (encoded, present), fn_output_signature=tf.TensorSpec([height, width, channels],
                                                                                    tf.float32))
    return pixels * tf.constant(SCALE, tf.float32) if scale else pixels


def apply_steps(raw: Any, steps: list[tuple[str, dict]], name: str, fitted_recorder: Any) -> dict[str, Any]:
    """One image feature's transform graph: {<name>_xf: float32 [batch, H, W, C]}; ``raw`` is the
    encoded column as feature_steps.Raw (values, present)."""
    import tensorflow as tf
    import tensorflow_transform as tft

    col = None
    for i, (step, args) in enumerate(steps):
        fit = fitted_recorder(name, i)
        if step == "decode_image":
            a = decode_args([(step, args)])
            col = decode(raw.values, raw.present, a["height"], a["width"], a["channels"], a["resize"])
        elif step == "per_channel_standardize":
            channels = col.shape[-1]
            flat = tf.cast(tf.reshape(col, [-1, channels]), tf.float64)  # every pixel of the batch
            mean = tft.mean(flat, reduce_instance_dims=False)
            std = tf.sqrt(tft.var(flat, reduce_instance_dims=False))
            mean, std = fit("mean", tf.cast(mean, tf.float32)), fit("std", tf.cast(std, tf.float32))
            col = (col - mean) / tf.where(std > 0, std, tf.ones_like(std))
        else:  # pragma: no cover - check() rejects other steps first
            raise ValueError(f"{name}: step {step} does not apply to images")
    return {f"{name}_xf": col}


# ================================================================== Trainer ==
DEFAULT_CONV = {"filters": [16, 32], "kernel_size": 3, "pool_size": 2}


def conv_input(out: Any, hp: dict[str, Any], keras: Any) -> tuple[Any, Any]:
    """(Input, flattened part) for an IMAGE output: Conv2D(relu, same) + MaxPool blocks
    (``hp["conv"]``: filters per block, kernel_size, pool_size); training.build_model joins it with
    any other features before the Dense hidden layers and the task's head."""
    conv = hp.get("conv") or DEFAULT_CONV
    inp = keras.Input(shape=tuple(out.shape), dtype="float32", name=out.name)
    x = inp
    for i, filters in enumerate(conv["filters"]):
        x = keras.layers.Conv2D(filters, conv.get("kernel_size", 3), padding="same", activation="relu",
                                name=f"{out.name}_conv_{i}")(x)
        x = keras.layers.MaxPooling2D(conv.get("pool_size", 2), name=f"{out.name}_pool_{i}")(x)
    return inp, keras.layers.Flatten(name=f"{out.name}_flat")(x)


def has_image(outputs: list) -> bool:
    return any(o.kind == IMAGE for o in outputs)


def augmenter(augmentation: dict[str, Any] | None, outputs: list, seed: int = 42) -> Any:
    """A tf.data map function (features, label) -> (features, label) that augments the image
    inputs of a train batch, or None. Applied in Trainer's train input only: never on eval
    batches, never in the exported model. Brightness and contrast act on the standardized
    pixels (brightness: ± the factor times a pixel std; contrast: scaled about each image's
    mean); rotation is a fraction of a full turn; flip is left-right."""
    if not augmentation or not has_image(outputs):
        return None
    import tensorflow as tf
    import tf_keras as keras

    names = [o.name for o in outputs if o.kind == IMAGE]
    rotation = float(augmentation.get("rotation", 0.0))
    rotate = keras.layers.RandomRotation(rotation, fill_mode="constant", seed=seed) if rotation > 0 else None
    brightness = float(augmentation.get("brightness", 0.0))
    contrast = float(augmentation.get("contrast", 0.0))
    flip = bool(augmentation.get("flip", False))

    def augment(features: dict, label: Any) -> tuple[dict, Any]:
        out = dict(features)
        for name in names:
            x = features[name]
            n = tf.shape(x)[0]
            if flip:
                x = tf.where(tf.random.uniform([n, 1, 1, 1]) < 0.5, tf.reverse(x, axis=[2]), x)
            if rotate is not None:
                x = rotate(x, training=True)
            if contrast > 0:
                mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
                factor = tf.random.uniform([n, 1, 1, 1], 1.0 - contrast, 1.0 + contrast)
                x = (x - mean) * factor + mean
            if brightness > 0:
                x = x + tf.random.uniform([n, 1, 1, 1], -brightness, brightness)
            out[name] = x
        return out, label

    return augment


# ============================================================= on-device ==
# The on-device model cannot decode (no built-in op): the app feeds decoded pixels.
PIXELS_DTYPE = "float32"


def spec_entry(feature: Any, value: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the feature's spec steps, its on-device input) from Transform's fitted values
    (``value(step, key)``)."""
    a = decode_args(feature.steps)
    h, w, c = a["height"], a["width"], a["channels"]
    steps: list[dict[str, Any]] = [{"op": "scale", "factor": SCALE}]
    for i, (name, _) in enumerate(feature.steps):
        if name == "per_channel_standardize":
            mean = [float(v) for v in value(i, "mean").reshape(-1)]
            std = [float(v) if v > 0 else 1.0 for v in value(i, "std").reshape(-1)]
            steps.append({"op": "per_channel_standardize", "mean": mean, "std": std})
    pixels = {
        "shape": [h, w, c], "dtype": PIXELS_DTYPE, "range": [0, 255],
        "channels": "greyscale (ITU-R 601-2 luma: 0.299 R + 0.587 G + 0.114 B)" if c == 1 else "RGB",
        "layout": "[batch, height, width, channels], rows top to bottom",
        "resize": f"{a['resize']} to {h}x{w} (tf.image.resize, half-pixel centres, no antialias) when the "
                  "decoded image has another size; an image of this size is fed as decoded",
        "decode": "PNG/JPEG/GIF(first frame)/BMP decoded to 8-bit values, fed as float32 0..255 (not scaled)",
    }
    return {"decode_image": {"height": h, "width": w, "channels": c, "resize": a["resize"]},
            "steps": steps, "pixels": pixels}, {"name": feature.name, "dtype": PIXELS_DTYPE, "shape": [h, w, c],
                                                "pixels": True, "missing": "none (an image is required)"}


def decode_pixels(encoded: list[bytes], height: int, width: int, channels: int, resize: str = "bilinear") -> Any:
    """What an app feeds the on-device model: float32 [n, H, W, C] pixels 0..255, decoded and
    resized exactly as Transform does (before its scaling)."""
    import numpy as np
    import tensorflow as tf

    data = tf.constant(list(encoded), tf.string)
    return np.asarray(decode(data, tf.ones_like(data, tf.bool), height, width, channels, resize, scale=False),
                      np.float32)
