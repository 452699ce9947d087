package spec

import (
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// tmpfsMounts are HostConfig.Tmpfs's mounts (--tmpfs), with dockerd's
// options: noexec, nosuid, nodev, rprivate, then the user's, a later
// size, mode or exec replacing an earlier one.
func tmpfsMounts(hc *container.HostConfig) []specs.Mount {
	var dests []string
	for d := range hc.Tmpfs {
		dests = append(dests, d)
	}
	sort.Strings(dests)
	var out []specs.Mount
	for _, d := range dests {
		opts := []string{"noexec", "nosuid", "nodev", "rprivate"}
		if data := hc.Tmpfs[d]; data != "" {
			opts = append(opts, strings.Split(data, ",")...)
		}
		out = append(out, specs.Mount{Destination: path.Clean(d), Type: "tmpfs", Source: "tmpfs", Options: MergeTmpfsOptions(opts)})
	}
	return out
}

// MergeTmpfsOptions keeps the last of each option that overrides another
// (size, mode, exec/noexec, ro/rw, ...), in first-seen order.
func MergeTmpfsOptions(opts []string) []string {
	var out []string
	seen := map[string]int{}
	for _, o := range opts {
		key, _, _ := strings.Cut(o, "=")
		switch key {
		case "exec", "noexec":
			key = "exec"
		case "ro", "rw":
			key = "rw"
		case "suid", "nosuid":
			key = "suid"
		case "dev", "nodev":
			key = "dev"
		case "atime", "noatime":
			key = "atime"
		}
		if i, ok := seen[key]; ok {
			out[i] = o
			continue
		}
		seen[key] = len(out)
		out = append(out, o)
	}
	return out
}

// withUserMounts adds the user's mounts (in.Mounts, then --tmpfs) to
// ms, whose first nDefault entries are the default mounts and the rest
// the engine's own binds (init, hosts files), as dockerd does: a user
// mount replaces a default or engine mount at the same destination, the
// non-default ones are sorted parents first, and with --read-only the
// default mounts but /proc and the /dev ones become read-only too.
func withUserMounts(ms []specs.Mount, nDefault int, in *Input, hc *container.HostConfig) []specs.Mount {
	user := append(slices.Clone(in.Mounts), tmpfsMounts(hc)...)
	dests := map[string]bool{}
	for _, m := range user {
		dests[path.Clean(m.Destination)] = true
	}
	var out []specs.Mount
	for _, m := range ms[:nDefault] {
		if dests[m.Destination] {
			continue
		}
		if hc.ReadonlyRootfs && !slices.Contains(m.Options, "ro") {
			switch m.Destination {
			case "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue":
			default:
				m.Options = append(slices.Clone(m.Options), "ro")
			}
		}
		out = append(out, m)
	}
	var rest []specs.Mount
	for _, m := range ms[nDefault:] {
		if !dests[m.Destination] {
			rest = append(rest, m)
		}
	}
	rest = append(rest, user...)
	sort.SliceStable(rest, func(i, j int) bool { return depth(rest[i].Destination) < depth(rest[j].Destination) })
	return append(out, rest...)
}

func depth(p string) int { return strings.Count(path.Clean(p), "/") }
