package store

import (
	"fmt"
	"strings"
	"time"

	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/storage"
)

// Command is the command line `docker ps` shows: path and args joined.
func (c *Container) Command() string {
	if len(c.Args) == 0 {
		return c.Path
	}
	// As dockerd: an argument with a space in it is shown in single
	// quotes (sh -c 'exit 3').
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		if strings.Contains(a, " ") {
			a = "'" + a + "'"
		}
		args[i] = a
	}
	return c.Path + " " + strings.Join(args, " ")
}

// StatusText is the Status column of `docker ps` at time now ("Up 2
// minutes", "Exited (0) 3 seconds ago", "Created"), worded as dockerd.
func (s *State) StatusText(now time.Time) string {
	if s.Running {
		up := units.HumanDuration(now.Sub(s.StartedAt))
		switch {
		case s.Paused:
			return "Up " + up + " (Paused)"
		case s.Restarting:
			return fmt.Sprintf("Restarting (%d) %s ago", s.ExitCode, units.HumanDuration(now.Sub(s.FinishedAt)))
		case s.Health != nil && s.Health.Status != "":
			return "Up " + up + " (" + healthText(s.Health.Status) + ")"
		}
		return "Up " + up
	}
	switch {
	case s.RemovalInProgress:
		return "Removal In Progress"
	case s.Dead:
		return "Dead"
	case s.StartedAt.IsZero():
		return "Created"
	case s.FinishedAt.IsZero():
		return ""
	}
	return fmt.Sprintf("Exited (%d) %s ago", s.ExitCode, units.HumanDuration(now.Sub(s.FinishedAt)))
}

func healthText(s container.HealthStatus) string {
	if s == container.Starting {
		return "health: starting"
	}
	return string(s)
}

// Summary is the container as GET /containers/json lists it.
func (c *Container) Summary(now time.Time) container.Summary {
	s := container.Summary{
		ID:      c.ID,
		Names:   []string{c.Name},
		Image:   c.Config.Image,
		ImageID: c.Image,
		Command: c.Command(),
		Created: c.Created.Unix(),
		Ports:   []container.PortSummary{},
		Labels:  c.Config.Labels,
		State:   c.State.Status(),
		Status:  c.State.StatusText(now),
		NetworkSettings: &container.NetworkSettingsSummary{
			Networks: map[string]*network.EndpointSettings{},
		},
		Mounts: c.APIMounts(),
	}
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	if s.Image == "" {
		s.Image = c.Image
	}
	s.HostConfig.NetworkMode = string(c.HostConfig.NetworkMode)
	s.HostConfig.Annotations = c.HostConfig.Annotations
	if c.State.Health != nil && c.State.Health.Status != "" {
		s.Health = &container.HealthSummary{Status: c.State.Health.Status, FailingStreak: c.State.Health.FailingStreak}
	}
	return s
}

// timeString is dockerd's form of a state time; the zero time shows as
// "0001-01-01T00:00:00Z".
func timeString(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Inspect is the container as GET /containers/{id}/json shows it.
func (c *Container) Inspect() container.InspectResponse {
	r := container.InspectResponse{
		ID:      c.ID,
		Created: timeString(c.Created),
		Path:    c.Path,
		Args:    c.Args,
		State: &container.State{
			Status:     c.State.Status(),
			Running:    c.State.Running,
			Paused:     c.State.Paused,
			Restarting: c.State.Restarting,
			OOMKilled:  c.State.OOMKilled,
			Dead:       c.State.Dead,
			Pid:        c.State.Pid,
			ExitCode:   c.State.ExitCode,
			Error:      c.State.Error,
			StartedAt:  timeString(c.State.StartedAt),
			FinishedAt: timeString(c.State.FinishedAt),
			Health:     c.State.Health,
		},
		Image:           c.Image,
		ResolvConfPath:  c.ResolvConfPath,
		HostnamePath:    c.HostnamePath,
		HostsPath:       c.HostsPath,
		LogPath:         c.LogPath,
		Name:            c.Name,
		RestartCount:    c.RestartCount,
		Driver:          c.Driver,
		Platform:        c.Platform,
		MountLabel:      c.MountLabel,
		ProcessLabel:    c.ProcessLabel,
		AppArmorProfile: c.AppArmorProfile,
		ExecIDs:         c.ExecIDs,
		HostConfig:      c.HostConfig,
		GraphDriver:     &storage.DriverData{Name: c.Driver},
		Mounts:          c.APIMounts(),
		Config:          c.Config,
		NetworkSettings: &container.NetworkSettings{
			Ports:    network.PortMap{},
			Networks: map[string]*network.EndpointSettings{},
		},
	}
	if r.Args == nil {
		r.Args = []string{}
	}
	if r.Platform == "" {
		r.Platform = "linux"
	}
	return r
}
