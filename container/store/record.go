// Package store owns container records on disk: one directory per
// container under the store's root, holding config.v2.json (the record,
// written crash-safely) and whatever else the engine keeps per container
// (logs, hosts files). It also owns the name index (atomic reservation,
// rename), lookup by name, id or unique id prefix, listing with Docker's
// filters, and the conversion of a record to the Engine API's list and
// inspect shapes.
package store

import (
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/volume"
)

// RecordFile is the record's name in the container's directory.
const RecordFile = "config.v2.json"

// State is a container's run state, as dockerd keeps it.
type State struct {
	Running           bool
	Paused            bool
	Restarting        bool
	OOMKilled         bool
	RemovalInProgress bool
	Dead              bool
	Pid               int
	ExitCode          int
	Error             string
	StartedAt         time.Time
	FinishedAt        time.Time
	Health            *container.Health `json:",omitempty"`
}

// Status is the state's one-word form (dockerd's StateString): created,
// running, paused, restarting, removing, exited or dead.
func (s *State) Status() container.ContainerState {
	switch {
	case s.Running && s.Paused:
		return container.StatePaused
	case s.Running && s.Restarting:
		return container.StateRestarting
	case s.Running:
		return container.StateRunning
	case s.RemovalInProgress:
		return container.StateRemoving
	case s.Dead:
		return container.StateDead
	case s.StartedAt.IsZero():
		return container.StateCreated
	}
	return container.StateExited
}

// Container is one container's record.
type Container struct {
	// ID is 64 lowercase hex digits.
	ID string
	// Name is the unique name with its leading slash ("/web").
	Name    string
	Created time.Time
	// Path and Args are the command as the user sees it (entrypoint and
	// cmd, without --init's wrapper).
	Path       string
	Args       []string
	Config     *container.Config
	HostConfig *container.HostConfig
	// Image is the image's id ("sha256:..."); Config.Image keeps the
	// reference the container was created from.
	Image string
	State State
	// RestartCount counts restarts by the restart policy.
	RestartCount int
	// HasBeenStartedBefore and HasBeenManuallyStopped drive the restart
	// policies (unless-stopped) as in dockerd.
	HasBeenStartedBefore   bool
	HasBeenManuallyStopped bool
	LogPath                string
	ResolvConfPath         string
	HostnamePath           string
	HostsPath              string
	// Driver names the storage driver of the rootfs ("overlay2").
	Driver          string
	Platform        string
	MountLabel      string
	ProcessLabel    string
	AppArmorProfile string
	ExecIDs         []string `json:",omitempty"`
	// MountPoints are the container's volumes, binds and --mount tmpfs
	// (not --tmpfs, which stays in HostConfig, as dockerd).
	MountPoints []volume.MountPoint `json:",omitempty"`
}

// APIMounts are the container's mounts as inspect and ps show them.
func (c *Container) APIMounts() []container.MountPoint {
	out := []container.MountPoint{}
	for i := range c.MountPoints {
		out = append(out, c.MountPoints[i].API())
	}
	return out
}
