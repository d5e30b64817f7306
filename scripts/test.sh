#!/usr/bin/env bash
# Installs what pftap's tests need (Debian packages, when missing) and runs
# them: go vet, go test ./..., and the macOS and Windows builds of the pure
# packages. Run as root on Linux: the lab and capture tests make network
# namespaces. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in tshark:tshark dumpcap:tshark tcpdump:tcpdump curl:curl socat:socat nginx:nginx-light ip:iproute2 capinfos:tshark chromium:chromium nsenter:util-linux \
  containerd:containerd containerd-shim-runc-v2:containerd ctr:containerd runc:runc etcd:etcd-server; do
  cmd=${pair%%:*} pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || need+=("$pkg")
done
# The containerd lab's pod network: CNI's bridge, host-local and loopback.
for plugin in bridge host-local loopback; do
  [ -x "/usr/lib/cni/$plugin" ] || need+=(containernetworking-plugins)
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test.sh: missing packages ${need[*]}; run as root to install them" >&2
    exit 1
  fi
  # shellcheck disable=SC2046
  echo "test.sh: installing $(printf '%s\n' "${need[@]}" | sort -u | tr '\n' ' ')"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
fi
test -x /usr/bin/kubectl || { echo "test.sh: /usr/bin/kubectl is missing" >&2; exit 1; }

echo "== go vet"
go vet ./...
echo "== cross builds (darwin, windows)"
GOOS=darwin GOARCH=arm64 go build ./...
GOOS=windows GOARCH=amd64 go build ./...
echo "== today's kubectl (k8s.io/kubectl, internal/tools/kubectl)"
# Built once (a few minutes on a fresh machine) and kept in the user's cache;
# the tests run it beside /usr/bin/kubectl.
ver=$(sed -n 's/^const ModuleVersion = "\(.*\)"/\1/p' internal/kubectl/kubectl.go)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/pftap/kubectl-$ver"
if [ ! -x "$cache/kubectl" ]; then
  mkdir -p "$cache"
  minor=${ver#v0.}; minor=${minor%%.*}; patch=${ver##*.}
  (cd internal/tools/kubectl && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=v1.$minor.$patch -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=v1.$minor.$patch" \
    -o "$cache/kubectl.tmp" . && mv "$cache/kubectl.tmp" "$cache/kubectl")
fi
export PFTAP_TODAYS_KUBECTL="$cache/kubectl"
"$PFTAP_TODAYS_KUBECTL" version --client
echo "== the real kube-apiserver (k8s.io/kubernetes, internal/tools/kubeapiserver)"
# Built once (about 4 minutes and 2.7 GB of build cache on a fresh
# machine) and kept in the user's cache; the tests run the lab with it.
kver=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v1\./ {print $2; exit}' internal/tools/kubeapiserver/go.mod)
kcache="${XDG_CACHE_HOME:-$HOME/.cache}/pftap/kube-apiserver-$kver"
if [ ! -x "$kcache/kube-apiserver" ]; then
  mkdir -p "$kcache"
  kminor=${kver#v1.}; kminor=${kminor%%.*}
  (cd internal/tools/kubeapiserver && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$kver -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$kminor" \
    -o "$kcache/kube-apiserver.tmp" . && mv "$kcache/kube-apiserver.tmp" "$kcache/kube-apiserver")
fi
export PFTAP_KUBE_APISERVER="$kcache/kube-apiserver"
"$PFTAP_KUBE_APISERVER" --version
echo "== the real kubelet (k8s.io/kubernetes, internal/tools/kubeapiserver/kubelet)"
# The same module and release as the kube-apiserver: built once (about 4
# minutes more with the apiserver's build cache, 11 from cold) and kept in
# the user's cache; the tests run the lab's node with it.
klcache="${XDG_CACHE_HOME:-$HOME/.cache}/pftap/kubelet-$kver"
if [ ! -x "$klcache/kubelet" ]; then
  mkdir -p "$klcache"
  kminor=${kver#v1.}; kminor=${kminor%%.*}
  (cd internal/tools/kubeapiserver && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$kver -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$kminor" \
    -o "$klcache/kubelet.tmp" ./kubelet && mv "$klcache/kubelet.tmp" "$klcache/kubelet")
fi
export PFTAP_KUBELET="$klcache/kubelet"
"$PFTAP_KUBELET" --version
echo "== containerd 2 (github.com/containerd/containerd/v2, its runc shim beside it)"
# Debian's containerd is 1.6; 2.3+ serves port-forward with k8s.io/cri-streaming.
# Built once (about 2.5 minutes) into the user's cache; the era tests run on it.
c2ver=v2.4.2
c2cache="${XDG_CACHE_HOME:-$HOME/.cache}/pftap/containerd-$c2ver"
if [ ! -x "$c2cache/containerd" ] || [ ! -x "$c2cache/containerd-shim-runc-v2" ]; then
  mkdir -p "$c2cache/tmp"
  CGO_ENABLED=0 GOBIN="$c2cache/tmp" go install -trimpath -ldflags "-s -w" -tags "no_btrfs no_devmapper no_zfs no_aufs" \
    "github.com/containerd/containerd/v2/cmd/containerd@$c2ver" "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$c2ver"
  mv "$c2cache/tmp/containerd-shim-runc-v2" "$c2cache/tmp/containerd" "$c2cache/" && rmdir "$c2cache/tmp"
fi
export PFTAP_CONTAINERD2="$c2cache/containerd"
"$PFTAP_CONTAINERD2" --version
echo "== go test"
go test -count=1 -timeout 20m ./...
