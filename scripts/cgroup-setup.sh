#!/usr/bin/env bash
# cgroup-setup.sh — give hugetlb a cgroup v1 hierarchy on a hybrid host.
# crun 1.8 refuses the hybrid layout while the cgroup2 mount at
# /sys/fs/cgroup/unified holds the hugetlb controller. Idempotent.
set -euo pipefail
[ -d /sys/fs/cgroup/unified ] || exit 0
[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] && exit 0
grep -qw hugetlb /proc/cgroups || exit 0
mkdir -p /sys/fs/cgroup/hugetlb
mountpoint -q /sys/fs/cgroup/hugetlb || mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
