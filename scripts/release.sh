#!/usr/bin/env bash
# Builds pftap's release archives, their checksums and the krew manifest.
#
#   bash scripts/release.sh VERSION [DIST]        (DIST: default dist/VERSION)
#
# One static binary per platform (CGO_ENABLED=0, -trimpath, VERSION stamped
# in), archived as pftap_VERSION_OS_ARCH.tar.gz with the README; checksums
# in SHA256SUMS; the krew manifest (scripts/krew/pftap.yaml.tmpl) filled
# with each archive's URL and SHA-256 as DIST/pftap.yaml. linux/amd64 and
# linux/arm64 are full builds; on darwin and windows pftap decodes, replays
# and traces (without an agent). PLATFORMS="os/arch ..." builds fewer.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?usage: release.sh VERSION [DIST]}
dist=${2:-dist/$version}
platforms=${PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64}
base_url=${BASE_URL:-https://github.com/pftap/pftap/releases/download/$version}
mkdir -p "$dist"
entries=""
: > "$dist/SHA256SUMS"
for p in $platforms; do
  os=${p%/*} arch=${p#*/}
  stage=$(mktemp -d)
  exe=pftap
  [ "$os" = windows ] && exe=pftap.exe
  echo "release.sh: building $os/$arch"
  CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$stage/$exe" ./cmd/pftap
  cp README.md "$stage/"
  archive=pftap_${version}_${os}_${arch}.tar.gz
  tar -C "$stage" --owner=0 --group=0 --numeric-owner -czf "$dist/$archive" "$exe" README.md
  rm -rf "$stage"
  sum=$(sha256sum "$dist/$archive" | cut -d' ' -f1)
  echo "$sum  $archive" >> "$dist/SHA256SUMS"
  entries+="  - selector:
      matchLabels:
        os: $os
        arch: $arch
    uri: $base_url/$archive
    sha256: $sum
    bin: $exe
"
done
awk -v v="$version" -v p="$entries" '{ gsub("@VERSION@", v); if ($0 == "@PLATFORMS@") { printf "%s", p } else print }' scripts/krew/pftap.yaml.tmpl > "$dist/pftap.yaml"
echo "release.sh: wrote $dist ($(echo "$platforms" | wc -w) archives, SHA256SUMS, pftap.yaml)"
