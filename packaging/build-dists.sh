#!/usr/bin/env bash
# Build the wheel and the sdist of this checkout into DIR (default dist/), with PyPA's `build`
# in a throw-away virtualenv, and check the wheel: the console script, the package data (the
# customer display page), and no test files.
#
#   packaging/build-dists.sh [DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:-$root/dist}" && cd "${1:-$root/dist}" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check 'build>=1.0'
"$work/venv/bin/python" -m build --outdir "$out" "$root" >"$work/build.log" 2>&1 \
    || { cat "$work/build.log"; exit 1; }

version="$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$root/pyproject.toml")"
wheel="$out/posbridge-$version-py3-none-any.whl"
sdist="$out/posbridge-$version.tar.gz"
python3 - "$wheel" <<'PY'
import sys
import zipfile

names = zipfile.ZipFile(sys.argv[1]).namelist()
wanted = ["hardware/displays/web_page.html", "posbridge/py.typed", "hardware/py.typed"]
missing = [n for n in wanted if n not in names]
tests = [n for n in names if n.startswith("tests/") or "/tests/" in n]
entry = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
if missing or tests or not entry:
    sys.exit(f"bad wheel: missing {missing}, test files {tests[:5]}, entry points {entry}")
text = zipfile.ZipFile(sys.argv[1]).read(entry[0]).decode()
if "posbridge = posbridge.cli:main" not in text:
    sys.exit("bad wheel: no posbridge console script")
PY
echo "built $wheel and $sdist"
