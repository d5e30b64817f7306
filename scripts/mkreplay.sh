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

lab spdy-get              --client kubectl --spdy
lab websocket-get         --client kubectl
lab spdy-bulk             --client kubectl --spdy --request 'GET /bytes?n=524288'
lab websocket-bulk        --client kubectl --request 'GET /bytes?n=524288'
lab spdy-concurrent       --client kubectl --spdy --concurrency 5 --request / --request / --request / --request / --request /
lab websocket-concurrent  --client kubectl --concurrency 5 --request / --request / --request / --request / --request /
lab pftap-websocket-get   --client pftap
lab socat-spdy-get        --client kubectl --spdy --runtime socat
refused spdy-refused      --client kubectl --spdy --remote-port 81
refused websocket-refused --client kubectl --remote-port 81
ls -l "$out"
