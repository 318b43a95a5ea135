#!/usr/bin/env bash
# Build posbridge_<version>_<arch>.deb from this checkout: a staged tree packed by dpkg-deb.
#
#   packaging/deb/build.sh [DIR]        (the .deb goes to DIR, default dist/)
#
# The package holds a virtualenv at /opt/posbridge with posbridge and its dependencies
# installed from the wheel (built here with packaging/build-dists.sh unless DIR has it),
# /usr/bin/posbridge linking to it, the systemd unit, and maintainer scripts that create the
# `posbridge` system user, /etc/posbridge and /var/lib/posbridge, and run `posbridge doctor`.
# The virtualenv is built on Debian's own python3 (/usr/bin/python3), so the package depends on
# that Python's minor version; the wheels of the compiled dependencies fix the architecture.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$(mkdir -p "${1:-$root/dist}" && cd "${1:-$root/dist}" && pwd)"
python=/usr/bin/python3
prefix=/opt/posbridge

version="$("$python" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$root/pyproject.toml")"
wheel="$out/posbridge-$version-py3-none-any.whl"
[ -f "$wheel" ] || "$root/packaging/build-dists.sh" "$out"
arch="$(dpkg --print-architecture)"
pyver="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
pynext="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1] + 1}")')"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"

# The program: a virtualenv built where it is staged, then told where it will live.
"$python" -m venv "$stage$prefix"
"$stage$prefix/bin/pip" install -q --disable-pip-version-check --no-compile "$wheel"
# The package manages the program: pip stays out of it (and out of the package's size).
"$stage$prefix/bin/pip" uninstall -q -y --disable-pip-version-check pip setuptools
grep -rlI --null "$stage$prefix" "$stage$prefix/bin" "$stage$prefix/pyvenv.cfg" \
    | xargs -0 sed -i "s#$stage$prefix#$prefix#g"
"$python" -m compileall -q -f -s "$stage" -p / "$stage$prefix/lib" >/dev/null
install -d "$stage/usr/bin"
ln -s "$prefix/bin/posbridge" "$stage/usr/bin/posbridge"

# The unit, the documentation and the example configuration.
install -D -m 0644 "$root/systemd/posbridge.service" "$stage/lib/systemd/system/posbridge.service"
doc="$stage/usr/share/doc/posbridge"
install -D -m 0644 "$root/README.md" "$doc/README.md"
install -m 0644 "$root/config/README.md" "$doc/config.md"
install -m 0644 "$root/config/posbridge.example.toml" "$doc/posbridge.example.toml"
install -m 0644 "$root/systemd/README.md" "$doc/systemd.md"
install -m 0644 "$root/docs/ecr-protocol.md" "$doc/ecr-protocol.md"
install -m 0644 "$here/copyright" "$doc/copyright"

# The control files.
install -d -m 0755 "$stage/DEBIAN"
for script in postinst prerm postrm; do
    install -m 0755 "$here/$script" "$stage/DEBIAN/$script"
done
size="$(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
    -e "s/@PYVER@/$pyver/" -e "s/@PYNEXT@/$pynext/" "$here/control.in" >"$stage/DEBIAN/control"

deb="$out/posbridge_${version}_${arch}.deb"
# zstd: dpkg reads it since Debian 12 (as old as the Python this needs), and it packs the
# 70 MB tree in a second where xz takes minutes.
dpkg-deb --root-owner-group -Zzstd --build "$stage" "$deb" >/dev/null
echo "built $deb"
