# Run by `make install` with the interpreter it is given, before the virtualenv exists:
# one line saying why that interpreter cannot be used (exit 1), or nothing (exit 0).
# Old interpreters must get that line too: nothing newer than Python 3.6 here, so the
# annotations are strings.
import os
import sys

# The versions the locks are resolved for and the toolchain check proves (README "Quick start").
SUPPORTED = ((3, 11), (3, 12), (3, 13))


def problem(
    version: "tuple[int, int]", executable: str, prefix: str, *, has_venv: bool, debian: bool
) -> "str | None":
    """Why ``executable`` cannot build the project's virtualenv, or None if it can."""
    names = [f"{major}.{minor}" for major, minor in SUPPORTED]
    if version not in SUPPORTED:
        wanted = ", ".join(names[:-1]) + " or " + names[-1]
        found = f"{version[0]}.{version[1]}"
        return f"{executable} is Python {found}; status-reporter needs Python {wanted}"
    if has_venv:
        return None
    if debian and prefix == "/usr":
        package = f"python{version[0]}.{version[1]}-venv"
        return f"{executable} has no venv module: install Debian's package {package}"
    return f"{executable} has no venv module (ensurepip): use a Python built with it"


def main() -> int:
    try:
        import ensurepip  # noqa: F401, PLC0415
        import venv  # noqa: F401, PLC0415
    except ImportError:
        has_venv = False
    else:
        has_venv = True
    found = problem(
        (sys.version_info[0], sys.version_info[1]),
        sys.executable,
        sys.prefix,
        has_venv=has_venv,
        debian=os.path.exists("/etc/debian_version"),
    )
    if found is None:
        return 0
    sys.stderr.write("error: " + found + "\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
