#!/usr/bin/env bash
# Bring the system C/C++ runtime up to what the TFX 1.21 wheels need.
#
# ml-metadata and tensorflow-data-validation 1.21 ship manylinux_2_39 wheels: they need
# glibc >= 2.38 and libstdc++ with GLIBCXX_3.4.32 (GCC 13). Debian 12 has glibc 2.36, so on
# Debian 12 (and only there) we upgrade libc6 and libstdc++6 from Debian 13 "trixie", using a
# temporary apt configuration so the machine's own apt sources stay untouched. Anywhere else
# that is too old we stop with a clear message instead of guessing.
set -euo pipefail

need_glibc="2.38"
need_glibcxx="GLIBCXX_3.4.32"

# getconf is part of libc itself; no pipeline (with pipefail, `ldd --version | head` can fail
# on SIGPIPE when ldd prints more than one line).
glibc_version() {
  local v
  v=$(getconf GNU_LIBC_VERSION 2>/dev/null) || v=""
  v=${v##* }
  [ -n "$v" ] && echo "$v" || echo 0
}

libstdcxx_path() {
  local p
  for p in /usr/lib/x86_64-linux-gnu/libstdc++.so.6 /usr/lib/aarch64-linux-gnu/libstdc++.so.6 \
           /usr/lib64/libstdc++.so.6 /usr/lib/libstdc++.so.6; do
    [ -e "$p" ] && { echo "$p"; return; }
  done
  ldconfig -p 2>/dev/null | awk '/libstdc\+\+\.so\.6 /{print $NF; exit}'
}

version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

has_glibcxx() {
  local lib; lib=$(libstdcxx_path)
  [ -n "$lib" ] && grep -aq "$need_glibcxx" "$lib"
}

ok() { version_ge "$(glibc_version)" "$need_glibc" && has_glibcxx; }

if ok; then
  echo "[bootstrap] system runtime ok: glibc $(glibc_version), libstdc++ has $need_glibcxx"
  exit 0
fi

. /etc/os-release 2>/dev/null || true
if [ "${ID:-}" != "debian" ] || [ "${VERSION_ID:-}" != "12" ]; then
  cat >&2 <<MSG
[bootstrap] ERROR: TFX 1.21 needs glibc >= $need_glibc and libstdc++ with $need_glibcxx.
Expected: a system that has them (Debian 13, Ubuntu 24.04 or newer), or Debian 12, which this
script upgrades automatically. Received: ${PRETTY_NAME:-unknown system}, glibc $(glibc_version),
libstdc++ $(has_glibcxx && echo "with" || echo "without") $need_glibcxx.
MSG
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "[bootstrap] ERROR: upgrading libc6/libstdc++6 needs root. Expected: root or sudo. Received: uid=$(id -u)" >&2
    exit 1
  fi
fi

src=/etc/apt/sources.list.d/debian.sources
if [ ! -f "$src" ]; then
  echo "[bootstrap] ERROR: expected $src (deb822 apt sources of Debian 12). Received: no such file" >&2
  exit 1
fi

echo "[bootstrap] Debian 12 with glibc $(glibc_version): upgrading libc6 and libstdc++6 from trixie (apt sources untouched)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lists/partial"
cp "$src" "$tmp/debian.sources"
uris=$(sed -n 's/^URIs:[[:space:]]*//p' "$src" | head -n1)
signed=$(sed -n 's/^Signed-By:[[:space:]]*//p' "$src" | head -n1)
cat >> "$tmp/debian.sources" <<SRC

Types: deb
URIs: ${uris:-http://deb.debian.org/debian}
Suites: trixie
Components: main
Signed-By: ${signed:-/usr/share/keyrings/debian-archive-keyring.gpg}
SRC
opts=(-o "Dir::Etc::SourceParts=$tmp" -o "Dir::Etc::SourceList=/dev/null" -o "Dir::State::Lists=$tmp/lists")
$SUDO apt-get "${opts[@]}" update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${opts[@]}" install -y -q -t trixie libc6 libstdc++6

if ok; then
  echo "[bootstrap] done: glibc $(glibc_version), libstdc++ has $need_glibcxx"
else
  echo "[bootstrap] ERROR: upgrade finished but the runtime is still too old (glibc $(glibc_version))" >&2
  exit 1
fi
