"""Assemble the runtime root file system of the image: only what the reporter runs
(docs/design.md, "The runtime image").

    python3 rootfs.py --trace TRACE.json --venv /opt/status-reporter --lock debian.amd64.lock \
        --license LICENSE --out /rootfs --manifest manifest.json

Runs in the Dockerfile's build stage, with Debian's python3 and dpkg database. Into OUT:

- the interpreter (the real file the virtualenv's ``bin/python`` points to);
- the standard-library modules of TRACE (what hack/image/probe.py saw loaded on every
  exercised path), less EXCLUDED, with their lib-dynload extensions;
- every shared library that these programs and extensions need (``ldd``), and the
  symbolic links on the way to each (``/lib`` -> ``usr/lib`` on merged-/usr Debian);
- the virtualenv, without its shell activation scripts;
- each Debian package's copyright file and its dpkg status paragraph, as
  ``/var/lib/dpkg/status.d/<package>`` (the distroless layout that scanners read);
- ``/etc/passwd`` and ``/etc/group`` (root and nonroot 65532), ``/etc/nsswitch.conf``,
  ``/home/nonroot``, ``/tmp``, and the project's LICENSE.

All Python sources are compiled to unchecked-hash bytecode (the image never changes, and
PYTHONDONTWRITEBYTECODE leaves a read-only root unwritten), file modes are normalised and
every timestamp is set to SOURCE_DATE_EPOCH, so the same inputs give the same files.

Every Debian package that a copied file comes from must be pinned, at its installed
version, in the lock file (``package version`` lines); otherwise the build stops and
says which. The manifest (JSON) lists each file with the package or Python distribution
it comes from, for hack/image/sbom.py.
"""

from __future__ import annotations

import argparse
import json
import os
import py_compile
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

STDLIB = Path(os.__file__).parent  # /usr/lib/python3.11
# Modules the standard library imports inside ``try: ... except ImportError`` and the
# reporter never uses: shutil's bz2/lzma archive support, uuid's C helper for uuid1()
# (each costs a shared library: libbz2, liblzma, libuuid), and Debian's sitecustomize
# (which only looks for Ubuntu's apport).
EXCLUDED = frozenset({"bz2", "_bz2", "lzma", "_lzma", "_compression", "_uuid", "sitecustomize"})
DPKG = Path("/var/lib/dpkg")
NONROOT = 65532
USERS = (
    "root:x:0:0:root:/root:/sbin/nologin\n"
    "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
)
GROUP = "root:x:0:\nnonroot:x:65532:\n"
# Host names from /etc/hosts first, then DNS (glibc's built-in modules; no libnss_*).
NSSWITCH = "passwd: files\ngroup: files\nhosts: files dns\n"


def fail(message: str) -> NoReturn:
    print(f"rootfs: {message}", file=sys.stderr)
    sys.exit(1)


@dataclass
class Package:
    """One installed Debian package: its dpkg status paragraph."""

    name: str
    paragraph: str
    fields: dict[str, str]

    @property
    def version(self) -> str:
        return self.fields["Version"]

    @property
    def source(self) -> str:
        return self.fields.get("Source", self.name).split(" ")[0]


@dataclass
class Tree:
    """The root file system being assembled, and where each file in it comes from."""

    out: Path
    owners: dict[str, str]  # canonical path -> Debian package
    files: dict[str, str] = field(default_factory=dict)  # image path -> origin

    def target(self, path: str) -> Path:
        return self.out / path.lstrip("/")

    def add(self, path: str, origin: str | None = None) -> None:
        """Copy ``path`` (absolute, as the build stage sees it) to the same place in the
        tree, with every symbolic link met on the way: a linked directory or file is
        recreated as the link, and what it points to is added as well."""
        parts = Path(path).parts[1:]
        current = Path("/")
        for index, part in enumerate(parts):
            current = current / part
            if current.is_symlink():
                self._link(current)
                # Followed as written (not resolved): links met further on are kept too.
                resolved = os.path.normpath(current.parent / os.readlink(current))
                self.add(os.path.join(resolved, *parts[index + 1 :]), origin)
                return
        if current.is_dir():
            self.target(str(current)).mkdir(parents=True, exist_ok=True)
            return
        if not current.is_file():
            fail(f"{current}: not a file")
        destination = self.target(str(current))
        if str(current) in self.files:
            return
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(current, destination)
        # Executable: the programs and libraries that are (ELF); not a module's source
        # that happens to start with #! (base64.py, platform.py).
        executable = current.stat().st_mode & stat.S_IXUSR and is_elf(current)
        destination.chmod(0o755 if executable else 0o644)
        self.files[str(current)] = origin or self.owner(str(current))

    def _link(self, link: Path) -> None:
        destination = self.target(str(link))
        if str(link) not in self.files:
            destination.parent.mkdir(parents=True, exist_ok=True)
            if not destination.is_symlink():
                destination.symlink_to(os.readlink(link))
            self.files[str(link)] = self.owner(str(link))

    def owner(self, path: str) -> str:
        owner = self.owners.get(path)
        if owner is None and path.endswith(".pyc"):
            # Debian compiles bytecode after unpacking: the package of the source owns it.
            source = re.sub(r"__pycache__/([^/]+)\.cpython-\d+\.pyc$", r"\1.py", path)
            owner = self.owners.get(source)
        return f"deb:{owner}" if owner else "unpackaged"

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        destination = self.target(path)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(text)
        destination.chmod(mode)
        self.files[path] = "unpackaged"


def canonical(path: str) -> str:
    """The path with its directories' symbolic links resolved (not the last part)."""
    directory, name = os.path.split(path)
    return os.path.join(os.path.realpath(directory), name)


def dpkg_packages() -> tuple[dict[str, Package], dict[str, str]]:
    """Installed packages by name, and each of their paths (canonical) -> package."""
    packages: dict[str, Package] = {}
    for paragraph in (DPKG / "status").read_text().split("\n\n"):
        if not paragraph.strip():
            continue
        fields: dict[str, str] = {}
        key = ""
        for line in paragraph.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line
            else:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields.get("Status", "").endswith(" installed"):
            packages[fields["Package"]] = Package(fields["Package"], paragraph.strip(), fields)
    owners: dict[str, str] = {}
    for listing in sorted((DPKG / "info").glob("*.list")):
        name = listing.name[: -len(".list")].partition(":")[0]
        if name not in packages:
            continue
        for line in listing.read_text().splitlines():
            if line and line != "/." and not os.path.isdir(line):
                owners.setdefault(canonical(line), name)
    return packages, owners


def stdlib_files(trace: Path) -> list[str]:
    """The standard library's files that the traced modules were loaded from."""
    modules: dict[str, str | None] = json.loads(trace.read_text())["modules"]
    files = []
    for name, file in sorted(modules.items()):
        if not file or name in EXCLUDED:
            continue
        path = Path(file)
        if path.is_relative_to(STDLIB) and path.name != "sitecustomize.py":
            files.append(str(path))
    # The landmarks by which the interpreter finds its prefix: os.py and lib-dynload.
    files.append(str(STDLIB / "os.py"))
    return sorted(set(files))


def needed_libraries(elves: list[str]) -> list[str]:
    """Every shared library (and the dynamic loader) the ELF files need, by ldd."""
    libraries: set[str] = set()
    for elf in elves:
        out = subprocess.run(["ldd", elf], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if "not found" in line:
                fail(f"{elf}: {line.strip()}")
            match = re.search(r"(/\S+) \(0x", line)
            if match:
                libraries.add(match.group(1))
    return sorted(libraries)


def is_elf(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(4) == b"\x7fELF"


def python_distributions(site_packages: Path, prefix: Path) -> dict[str, str]:
    """Each installed file of the virtualenv -> ``pypi:<name>`` of its distribution."""
    owners: dict[str, str] = {}
    for record in sorted(site_packages.glob("*.dist-info/RECORD")):
        name = record.parent.name.rsplit("-", 1)[0]
        for line in record.read_text().splitlines():
            relative = line.rsplit(",", 2)[0]
            path = os.path.normpath(site_packages / relative)
            owners[path] = f"pypi:{name}"
            if Path(path).is_relative_to(prefix):
                continue
            fail(f"{record}: {relative} is outside the virtualenv")
    return owners


def copy_venv(tree: Tree, venv: Path, site_packages: Path) -> None:
    dists = python_distributions(site_packages, venv)
    for directory, subdirs, files in os.walk(venv):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
        for name in sorted(files):
            path = Path(directory) / name
            if path.parent == venv / "bin" and name.lower().startswith("activate"):
                continue  # shell activation scripts: no shell here
            if path.suffix == ".pyc":
                continue  # compiled again below, as unchecked-hash bytecode
            destination = tree.target(str(path))
            destination.parent.mkdir(parents=True, exist_ok=True)
            if path.is_symlink():
                destination.symlink_to(os.readlink(path))
            else:
                shutil.copyfile(path, destination)
                destination.chmod(0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644)
            tree.files[str(path)] = dists.get(str(path), "unpackaged")
        for name in subdirs:
            link = Path(directory) / name
            if link.is_symlink():  # lib64 -> lib in a virtualenv
                tree.target(str(link)).symlink_to(os.readlink(link))
                tree.files[str(link)] = "unpackaged"


def compile_sources(tree: Tree) -> None:
    """Bytecode for every module source, beside it in __pycache__, as unchecked-hash
    .pyc files: valid whatever the timestamps, never checked against the source."""
    for path in sorted(tree.files):
        if not path.endswith(".py") or tree.target(path).is_symlink():
            continue
        source = Path(path)
        cache = source.parent / "__pycache__" / f"{source.stem}.{sys.implementation.cache_tag}.pyc"
        py_compile.compile(
            str(tree.target(path)),
            cfile=str(tree.target(str(cache))),
            dfile=path,
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        tree.target(str(cache)).chmod(0o644)
        origin = tree.files[path]
        tree.files[str(cache)] = origin


def check_pins(lock: Path, used: dict[str, Package]) -> None:
    pins = {}
    for line in lock.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split()
            pins[name] = version
    problems = []
    for name, package in sorted(used.items()):
        if name not in pins:
            problems.append(f"{name} {package.version}: not pinned")
        elif pins[name] != package.version:
            problems.append(f"{name} {package.version}: pinned at {pins[name]}")
    if problems:
        fail(
            f"the image would hold Debian packages that {lock.name} does not pin:\n  "
            + "\n  ".join(problems)
            + "\nupdate the pins (make image-lock) and commit them"
        )


def copyright_of(name: str, used: dict[str, Package]) -> Path:
    """The package's copyright file; where a slimmed base removed the package's doc
    directory (Debian makes it a link to a package of the same source), that one's."""
    own = Path("/usr/share/doc") / name / "copyright"
    if own.exists():
        return own
    source = used[name].source
    for other, package in used.items():
        candidate = Path("/usr/share/doc") / other / "copyright"
        if other != name and package.source == source and candidate.exists():
            return candidate
    fail(f"{name}: no copyright file (/usr/share/doc/{name}/copyright)")


def add_copyright(tree: Tree, name: str, used: dict[str, Package]) -> None:
    copyright_file = copyright_of(name, used)
    if copyright_file.parent.name == name:
        tree.add(str(copyright_file))
    else:  # as Debian ships it: /usr/share/doc/<package> -> <package of the same source>
        link = f"/usr/share/doc/{name}"
        tree.target(link).parent.mkdir(parents=True, exist_ok=True)
        tree.target(link).symlink_to(copyright_file.parent.name)
        tree.files[link] = tree.owner(link)


def normalise(out: Path, epoch: int) -> None:
    """Directories 0755 (/tmp 1777), owner root (nonroot's home its own), one timestamp."""
    for directory, subdirs, files in os.walk(out):
        for name in subdirs:
            path = Path(directory) / name
            if not path.is_symlink():
                path.chmod(0o755)
        for name in [*subdirs, *files]:
            os.utime(Path(directory) / name, (epoch, epoch), follow_symlinks=False)
    for directory, subdirs, files in os.walk(out):
        for name in [*subdirs, *files]:
            os.lchown(Path(directory) / name, 0, 0)
    if (out / "tmp").exists():  # not with --venv-only: the base has its own
        (out / "tmp").chmod(0o1777)
        os.chown(out / "home" / "nonroot", NONROOT, NONROOT)
    os.utime(out, (epoch, epoch))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trace", type=Path, required=True)
    parser.add_argument("--venv", type=Path, required=True)
    parser.add_argument("--lock", type=Path, required=True)
    parser.add_argument("--license", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument(
        "--venv-only",
        action="store_true",
        help="only the virtualenv and the project's files (a base image brings Python)",
    )
    options = parser.parse_args()
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))

    packages, owners = dpkg_packages()
    tree = Tree(options.out, owners)
    options.out.mkdir(parents=True, exist_ok=True)
    venv = options.venv.resolve()
    site_packages = next(venv.glob("lib/python3*/site-packages"))
    copy_venv(tree, venv, site_packages)
    if not options.venv_only:
        interpreter = os.path.realpath(venv / "bin" / "python")
        tree.add(interpreter)
        for file in stdlib_files(options.trace):
            tree.add(file)
        tree.add(str(STDLIB / "lib-dynload"))
        elves = [
            path
            for path in tree.files
            if not Path(path).is_symlink() and Path(path).is_file() and is_elf(Path(path))
        ]
        for library in needed_libraries(elves):
            tree.add(library)
        names = {origin[4:] for origin in tree.files.values() if origin.startswith("deb:")}
        used = {name: packages[name] for name in sorted(names)}
        check_pins(options.lock, used)
        for name, package in used.items():
            add_copyright(tree, name, used)
            tree.write(f"/var/lib/dpkg/status.d/{name}", package.paragraph + "\n")
        tree.write("/etc/passwd", USERS)
        tree.write("/etc/group", GROUP)
        tree.write("/etc/nsswitch.conf", NSSWITCH)
        for directory in ("home/nonroot", "tmp"):
            (options.out / directory).mkdir(parents=True, exist_ok=True)
    else:
        used = {}
    doc = "/usr/share/doc/status-reporter"
    tree.write(f"{doc}/LICENSE", options.license.read_text())
    compile_sources(tree)
    normalise(options.out, epoch)

    manifest = {
        "packages": {
            name: {
                "version": package.version,
                "architecture": package.fields.get("Architecture", ""),
                "source": package.source,
                "copyright": str(copyright_of(name, used)),
            }
            for name, package in used.items()
        },
        "debian_version": Path("/etc/debian_version").read_text().strip(),
        "site_packages": str(site_packages),
        "files": dict(sorted(tree.files.items())),
    }
    options.manifest.write_text(json.dumps(manifest, indent=1) + "\n")
    size = sum(
        (Path(directory) / name).lstat().st_size
        for directory, _subdirs, files in os.walk(options.out)
        for name in files
    )
    print(
        f"rootfs: {len(tree.files)} files, {size / 1e6:.1f} MB,"
        f" {len(used)} Debian packages: {' '.join(used)}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
