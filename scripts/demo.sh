#!/usr/bin/env bash
# demo.sh — the main job through the engine, offline: start berthd on
# temporary roots and socket, make a FROM-scratch image around the static
# berth-whoami with `berth import`, run it with `berth run --rm` inside
# walls (64 MiB, 32 pids, its own hostname), then stop berthd and clean up.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/bin
tmp=$(mktemp -d /tmp/berth-demo.XXXXXX)
run=$(mktemp -d /run/berth-demo.XXXXXX)
sock=$run/berth.sock
pid=
cleanup() {
	if [ -n "$pid" ]; then
		"$bin/berth" -H "unix://$sock" rm -f berth-demo >/dev/null 2>&1 || true
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp" "$run"
	rmdir /sys/fs/cgroup/*/berth-demo /sys/fs/cgroup/berth-demo 2>/dev/null || true
}
trap cleanup EXIT

echo "+ berthd --data-root $tmp/data --exec-root $run -H unix://$sock &"
"$bin/berthd" --data-root "$tmp/data" --exec-root "$run" -H "unix://$sock" \
	--config-file /dev/null --cgroup-parent /berth-demo >"$tmp/berthd.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	[ -S "$sock" ] && break
	kill -0 "$pid" 2>/dev/null || { cat "$tmp/berthd.log"; exit 1; }
	sleep 0.05
done
export BERTH_HOST=unix://$sock

mkdir "$tmp/rootfs"
cp "$bin/berth-whoami" "$tmp/rootfs/berth-whoami"
tar -C "$tmp/rootfs" -cf "$tmp/whoami.tar" .
echo "+ berth import --change 'CMD [\"/berth-whoami\"]' whoami.tar berth-demo:latest"
"$bin/berth" import --change 'CMD ["/berth-whoami"]' "$tmp/whoami.tar" berth-demo:latest
"$bin/berth" images
echo "+ berth run --rm --name berth-demo --memory 64m --pids-limit 32 --hostname berth-demo berth-demo"
"$bin/berth" run --rm --name berth-demo --memory 64m --pids-limit 32 --hostname berth-demo berth-demo
echo "+ berth ps -a"
"$bin/berth" ps -a
