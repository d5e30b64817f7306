#!/bin/sh
# Re-make the replay recordings in testdata/replay with `pftap lab -w`.
# Run as root from the repository's root: sh scripts/mkreplay.sh [DIR]
set -eu
out=${1:-testdata/replay}
mkdir -p "$out"
bin=$(mktemp -d)/pftap
go build -o "$bin" ./cmd/pftap
lab() { name=$1; shift; echo "== $name: pftap lab $*"; "$bin" lab --no-color -w "$out/$name.pcapng" "$@" >/dev/null; }
refused() { name=$1; shift; echo "== $name: pftap lab $* (the request fails: nothing listens on port 81)"
	if "$bin" lab --no-color -w "$out/$name.pcapng" "$@" >/dev/null 2>&1; then echo "expected a failed request" >&2; exit 1; fi; }

# The Kubernetes 1.35 chain (the apiserver tunnels WebSocket into SPDY), as
# these were first made; --spdy: the lab refuses kubectl's WebSocket upgrade.
lab spdy-get              --kubernetes 1.35 --client kubectl --spdy
lab websocket-get         --kubernetes 1.35 --client kubectl
lab spdy-bulk             --kubernetes 1.35 --client kubectl --spdy --request 'GET /bytes?n=524288'
lab websocket-bulk        --kubernetes 1.35 --client kubectl --request 'GET /bytes?n=524288'
lab spdy-concurrent       --kubernetes 1.35 --client kubectl --spdy --concurrency 5 --request / --request / --request / --request / --request /
lab websocket-concurrent  --kubernetes 1.35 --client kubectl --concurrency 5 --request / --request / --request / --request / --request /
lab pftap-websocket-get   --kubernetes 1.35 --client pftap
lab socat-spdy-get        --client kubectl --spdy --runtime socat
refused spdy-refused      --kubernetes 1.35 --client kubectl --spdy --remote-port 81
refused websocket-refused --kubernetes 1.35 --client kubectl --remote-port 81
# Today's chain (1.37: WebSocket on to the kubelet) and a skew (1.36
# apiserver, 1.35 kubelet: the apiserver tunnels).
lab k137-websocket-get          --client kubectl
lab skew-136-135-websocket-get  --client kubectl --kubernetes 1.36 --kubelet 1.35
ls -l "$out"
