# Run by `make install` with the interpreter it is given, before the virtualenv exists:
# one line saying why that interpreter cannot be used (exit 1), or nothing (exit 0).
# It must run on any Python 3, so it uses no syntax newer than 3.0 (type comments).
import os
import sys

# The versions the locks are resolved for and the toolchain check proves (README "Quick start").
SUPPORTED = ((3, 11), (3, 12), (3, 13))


def problem(version, executable, prefix, has_venv, debian):
    # type: (tuple[int, int], str, str, bool, bool) -> str | None
    """Why ``executable`` cannot build the project's virtualenv, or None if it can."""
    names = ["%d.%d" % minor for minor in SUPPORTED]
    supported = ", ".join(names[:-1]) + " or " + names[-1]
    if version not in SUPPORTED:
        return "%s is Python %d.%d; status-reporter needs Python %s (make install PYTHON=python3.11)" % (
            (executable, version[0], version[1], supported)
        )
    if has_venv:
        return None
    if debian and prefix == "/usr":
        return "%s has no venv module: install Debian's python%d.%d-venv package" % (
            (executable, version[0], version[1])
        )
    return "%s has no venv module (ensurepip): use a Python built with it" % executable


def main():
    # type: () -> int
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
        has_venv,
        os.path.exists("/etc/debian_version"),
    )
    if found is None:
        return 0
    sys.stderr.write("error: " + found + "\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
