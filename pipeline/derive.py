"""A pipeline config derived from a shipped one: paths made absolute, sections dropped together
with what depends on them, keys overridden. Benchmarks and tests derive their configs here, so a
new config section or a new dependency between sections is handled once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# Values of other sections that name things a section defines: dropping the section drops them.
_VARIANT_MODELS = ("pruned", "qat", "student")  # deployment.models entries that optimization defines


def derive(base: Path, *, drop: tuple[str, ...] = (), **overrides: Any) -> dict:
    """The config at ``base`` as a dict, with relative paths resolved against ``base``'s folder,
    the ``drop`` sections removed (and deployment.models entries naming dropped variants), and
    ``overrides`` applied: a dict merges into a dict section, None removes a key, anything else
    replaces it."""
    cfg = yaml.safe_load(Path(base).read_text())
    folder = Path(base).resolve().parent
    data = cfg.get("data", {})
    for key in ("csv_dir", "image_dir"):  # the manifest of image_dir is relative to image_dir
        if key in data:
            data[key] = str((folder / data[key]).resolve())
    if isinstance(cfg.get("schema"), str):
        cfg["schema"] = str((folder / cfg["schema"]).resolve())
    return merge(cfg, drop=drop, **overrides)


def merge(cfg: dict, *, drop: tuple[str, ...] = (), **overrides: Any) -> dict:
    """``cfg`` with the ``drop`` sections removed and ``overrides`` applied (as in ``derive``), then
    what depends on a missing section removed with it."""
    for key in drop:
        cfg.pop(key, None)
    for key, value in overrides.items():
        if value is None:
            cfg.pop(key, None)
        elif isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    deployment = cfg.get("deployment")
    if isinstance(deployment, dict) and "optimization" not in cfg:
        models = [m for m in deployment.get("models", ["trained"]) if m not in _VARIANT_MODELS]
        deployment["models"] = models or ["trained"]
    return cfg


def write(cfg: dict, path: Path, output_root: Path | None = None) -> Path:
    """Write ``cfg`` as YAML to ``path`` and load it back, so a config the pipeline would reject
    fails here, before any work starts (a benchmark must not run upstream for minutes first)."""
    from pipeline.config import load_config

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    load_config(path, output_root=output_root)
    return path
