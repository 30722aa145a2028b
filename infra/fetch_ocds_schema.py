"""Fetch the official OCDS 1.1.5 release-package and release schemas for the tests.

Usage: ``python infra/fetch_ocds_schema.py [DEST]`` (default ``test-artifacts/ocds-schema/``
in the repository, which is not committed).

The schemas are not copied into the repository. This machine reaches PyPI, and two
maintained Open Contracting packages ship the official schema files, unchanged, as test
fixtures in their source distributions (not in their wheels):

- ``ocdsextensionregistry==0.7.0``: ``tests/fixtures/release-schema.json``
- ``ocdskit==1.7.0``: ``tests/fixtures/release-package-schema.json``

This script downloads those two sdists with pip, reads only the two named files from
them (nothing else is extracted, and no path from the archive is written to disk), checks
each file against the SHA-256 pinned below and writes it to DEST. If both files are
already in DEST with the pinned hashes, nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DEST = ROOT / "test-artifacts" / "ocds-schema"

RELEASE_SCHEMA_ID = "https://standard.open-contracting.org/schema/1__1__5/release-schema.json"
RELEASE_PACKAGE_SCHEMA_ID = (
    "https://standard.open-contracting.org/schema/1__1__5/release-package-schema.json")


@dataclass(frozen=True)
class SchemaFile:
    name: str         # file name in DEST
    requirement: str  # the pip requirement whose sdist ships the file
    member: str       # the file's path inside that sdist
    sha256: str       # of the file itself (not of the sdist)


RELEASE_SCHEMA = SchemaFile(
    name="release-schema.json",
    requirement="ocdsextensionregistry==0.7.0",
    member="ocdsextensionregistry-0.7.0/tests/fixtures/release-schema.json",
    sha256="bf18280598c08c9889051a61e1cd39af8e1aebbfb9c260c31be155604026a149",
)
RELEASE_PACKAGE_SCHEMA = SchemaFile(
    name="release-package-schema.json",
    requirement="ocdskit==1.7.0",
    member="ocdskit-1.7.0/tests/fixtures/release-package-schema.json",
    sha256="44a9d8d66001af8e44112b45f5cc7923ee2f40f4790e816f90af1782c5885ee5",
)
FILES = (RELEASE_SCHEMA, RELEASE_PACKAGE_SCHEMA)


class FetchError(RuntimeError):
    """The schemas could not be downloaded, or a file did not match its pinned hash."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_current(path: Path, f: SchemaFile) -> bool:
    return path.is_file() and _sha256(path.read_bytes()) == f.sha256


def _download(requirement: str, into: Path) -> Path:
    """pip-download the sdist of ``requirement`` into the empty folder ``into``."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--no-deps", "--no-binary", ":all:", "-d", str(into), requirement]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FetchError(f"pip download {requirement} failed: {e}") from e
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip().splitlines()[-15:]
        raise FetchError(f"pip download {requirement} exited with {done.returncode}:\n"
                         + "\n".join(output))
    sdists = sorted(into.glob("*.tar.gz"))
    if len(sdists) != 1:
        raise FetchError(f"pip download {requirement} gave {[p.name for p in into.iterdir()]}, "
                         "expected one .tar.gz sdist")
    return sdists[0]


def _read_member(sdist: Path, member: str) -> bytes:
    """The bytes of one regular file in the archive, read in memory (never extracted)."""
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            info = tar.getmember(member)
            if not info.isfile():  # a link or folder where the schema should be
                raise FetchError(f"{sdist.name}: {member} is not a regular file")
            stream = tar.extractfile(info)
            if stream is None:
                raise FetchError(f"{sdist.name}: cannot read {member}")
            return stream.read()
    except KeyError as e:
        raise FetchError(f"{sdist.name} has no {member}") from e
    except (OSError, tarfile.TarError) as e:
        raise FetchError(f"{sdist.name} is not a readable .tar.gz: {e}") from e


def _write(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so DEST never holds half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure(dest: Path | str = DEFAULT_DEST) -> Path:
    """Make sure DEST holds both schema files with their pinned hashes; return DEST.

    Raises FetchError (with the reason) if a download or a hash check fails."""
    dest = Path(dest)
    missing = [f for f in FILES if not _is_current(dest / f.name, f)]
    if not missing:
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ocds-schema-") as tmp:
        for i, f in enumerate(missing):
            into = Path(tmp) / str(i)
            into.mkdir()
            data = _read_member(_download(f.requirement, into), f.member)
            got = _sha256(data)
            if got != f.sha256:
                raise FetchError(f"{f.member} from {f.requirement} has sha256 {got}, "
                                 f"expected {f.sha256}")
            _write(dest / f.name, data)
    return dest


def schema_dir() -> Path:
    """The default folder, holding both schema files (fetched if need be)."""
    return ensure(DEFAULT_DEST)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0].startswith("-")):
        print("usage: python infra/fetch_ocds_schema.py [DEST]", file=sys.stderr)
        return 2
    try:
        dest = ensure(args[0] if args else DEFAULT_DEST)
    except FetchError as e:
        print(f"fetch_ocds_schema: {e}", file=sys.stderr)
        return 1
    print(f"OCDS 1.1.5 schemas in {dest}: " + ", ".join(f.name for f in FILES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
