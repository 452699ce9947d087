// Package idmap owns berthd's user namespace remapping (--userns-remap):
// the subordinate id range a remapped daemon gives its containers (read
// from /etc/subuid and /etc/subgid, as dockerd does), the translation of
// ids between a container and the host, and the two ways image layers
// are shown to a remapped container: idmapped mounts of the shared
// layers, or a chown'd copy of them cached once per range.
package idmap

import (
	"fmt"
	"strconv"
)

// Range maps Size ids starting at ContainerID inside the user namespace
// to HostID and following on the host.
type Range struct {
	ContainerID uint32 `json:"container_id"`
	HostID      uint32 `json:"host_id"`
	Size        uint32 `json:"size"`
}

// Mapping is a container's uid and gid ranges. The zero Mapping means no
// remapping (the host's ids).
type Mapping struct {
	UID Range `json:"uid"`
	GID Range `json:"gid"`
}

// MinRangeSize is the smallest subordinate range berthd accepts: one
// that holds every id a Linux userland expects (nobody is 65534).
const MinRangeSize = 65536

// Empty reports whether m maps nothing (no remapping).
func (m Mapping) Empty() bool { return m.UID.Size == 0 || m.GID.Size == 0 }

// Root is the host uid and gid of the container's root.
func (m Mapping) Root() (uid, gid int) { return m.HostIDs(0, 0) }

func (r Range) toHost(id int) (int, bool) {
	if id < int(r.ContainerID) || id >= int(r.ContainerID)+int(r.Size) {
		return 0, false
	}
	return id - int(r.ContainerID) + int(r.HostID), true
}

func (r Range) toContainer(id int) (int, bool) {
	if id < int(r.HostID) || id >= int(r.HostID)+int(r.Size) {
		return 0, false
	}
	return id - int(r.HostID) + int(r.ContainerID), true
}

// HostIDs translates a container uid and gid to the host's; ids outside
// the mapping become the overflow id 65534, as the kernel shows them.
func (m Mapping) HostIDs(uid, gid int) (int, int) {
	if m.Empty() {
		return uid, gid
	}
	u, ok := m.UID.toHost(uid)
	if !ok {
		u = overflowID
	}
	g, ok := m.GID.toHost(gid)
	if !ok {
		g = overflowID
	}
	return u, g
}

// ContainerIDs translates host ids to the container's; ids outside the
// range become the overflow id 65534, as the kernel shows them inside.
func (m Mapping) ContainerIDs(uid, gid int) (int, int) {
	if m.Empty() {
		return uid, gid
	}
	u, ok := m.UID.toContainer(uid)
	if !ok {
		u = overflowID
	}
	g, ok := m.GID.toContainer(gid)
	if !ok {
		g = overflowID
	}
	return u, g
}

// overflowID is the kernel's default overflowuid/overflowgid.
const overflowID = 65534

// Key names the mapping's range the way dockerd names its remapped root
// directory ("100000.100000").
func (m Mapping) Key() string {
	return strconv.FormatUint(uint64(m.UID.HostID), 10) + "." + strconv.FormatUint(uint64(m.GID.HostID), 10)
}

// String is the mapping in uid_map's syntax, for messages.
func (m Mapping) String() string {
	return fmt.Sprintf("uid %d %d %d, gid %d %d %d", m.UID.ContainerID, m.UID.HostID, m.UID.Size, m.GID.ContainerID, m.GID.HostID, m.GID.Size)
}
