package store

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/errdefs"
)

// ListOptions are the parameters of GET /containers/json.
type ListOptions struct {
	// All lists stopped containers too; otherwise only running (and
	// paused, restarting) ones, unless a status or exited filter asks.
	All bool
	// Limit returns only the newest Limit containers (and implies All).
	Limit int
	// Filters are Docker's: id, name, label, status, ancestor, exited,
	// before, since, is-task, health, network, volume, publish, expose.
	// Each key maps to the values given for it: a container passes a key
	// when it matches any of its values (label: all of them), and must
	// pass every key.
	Filters map[string][]string
	// ImageIDs resolves an ancestor filter value (an image reference or
	// id) to the image ids it names; nil matches by reference and id
	// prefix only.
	ImageIDs func(ref string) []string
}

var validStatus = map[string]bool{
	"created": true, "restarting": true, "running": true, "removing": true,
	"paused": true, "exited": true, "dead": true,
}

// List returns the containers that pass opts, newest first.
func (s *Store) List(opts ListOptions) ([]*Container, error) {
	f := opts.Filters
	for k := range f {
		switch k {
		case "id", "name", "label", "status", "ancestor", "exited", "before", "since", "is-task", "health", "network", "volume", "publish", "expose":
		default:
			return nil, fmt.Errorf("Invalid filter '%s': %w", k, errdefs.ErrInvalidArgument)
		}
	}
	for _, v := range f["status"] {
		if !validStatus[v] {
			return nil, fmt.Errorf("Invalid filter 'status=%s': %w", v, errdefs.ErrInvalidArgument)
		}
	}
	var exited []int
	for _, v := range f["exited"] {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("invalid filter 'exited=%s': %w", v, errdefs.ErrInvalidArgument)
		}
		exited = append(exited, n)
	}
	for _, v := range f["is-task"] {
		if _, err := strconv.ParseBool(v); err != nil {
			return nil, fmt.Errorf("Invalid filter 'is-task=%s': %w", v, errdefs.ErrInvalidArgument)
		}
	}
	for _, v := range f["health"] {
		switch v {
		case "starting", "healthy", "unhealthy", "none":
		default:
			return nil, fmt.Errorf("Unrecognised filter value for health: %s: %w", v, errdefs.ErrInvalidArgument)
		}
	}
	publish, err := portFilter("publish", f["publish"])
	if err != nil {
		return nil, err
	}
	expose, err := portFilter("expose", f["expose"])
	if err != nil {
		return nil, err
	}
	var idRe, nameRe []*regexp.Regexp
	for _, v := range f["id"] {
		re, err := regexp.Compile(v)
		if err != nil {
			return nil, fmt.Errorf("invalid filter 'id=%s': %v: %w", v, err, errdefs.ErrInvalidArgument)
		}
		idRe = append(idRe, re)
	}
	for _, v := range f["name"] {
		re, err := regexp.Compile(v)
		if err != nil {
			return nil, fmt.Errorf("invalid filter 'name=%s': %v: %w", v, err, errdefs.ErrInvalidArgument)
		}
		nameRe = append(nameRe, re)
	}
	var before, since *Container
	if len(f["before"]) > 0 {
		if before, err = s.Get(f["before"][0]); err != nil {
			return nil, err
		}
	}
	if len(f["since"]) > 0 {
		if since, err = s.Get(f["since"][0]); err != nil {
			return nil, err
		}
	}
	var ancestors []string
	for _, v := range f["ancestor"] {
		ancestors = append(ancestors, v)
		if opts.ImageIDs != nil {
			ancestors = append(ancestors, opts.ImageIDs(v)...)
		}
	}

	all := opts.All || opts.Limit > 0 || len(f["status"]) > 0 || len(exited) > 0
	var out []*Container
	for _, c := range s.all() {
		if !all && !c.State.Running {
			continue
		}
		if before != nil && !c.Created.Before(before.Created) {
			continue
		}
		if since != nil && !c.Created.After(since.Created) {
			continue
		}
		if len(idRe) > 0 && !anyMatch(idRe, c.ID) {
			continue
		}
		if len(nameRe) > 0 && !anyMatch(nameRe, c.Name) && !anyMatch(nameRe, strings.TrimPrefix(c.Name, "/")) {
			continue
		}
		if len(f["status"]) > 0 && !contains(f["status"], string(c.State.Status())) {
			continue
		}
		if len(exited) > 0 && !(c.State.Status() == container.StateExited && containsInt(exited, c.State.ExitCode)) {
			continue
		}
		if !labelsMatch(f["label"], c.Config.Labels) {
			continue
		}
		if len(ancestors) > 0 && !ancestorMatch(ancestors, c) {
			continue
		}
		if len(f["volume"]) > 0 && !volumeMatch(f["volume"], c) {
			continue
		}
		if len(f["is-task"]) > 0 && contains(f["is-task"], "true") && !contains(f["is-task"], "false") {
			continue // Berth has no swarm tasks
		}
		if len(f["health"]) > 0 && !contains(f["health"], healthStatus(c)) {
			continue
		}
		if len(f["network"]) > 0 && !contains(f["network"], string(c.HostConfig.NetworkMode)) {
			continue
		}
		if len(publish) > 0 && !anyPort(publish, c.HostConfig.PortBindings) {
			continue
		}
		if len(expose) > 0 && !anyPort(expose, c.Config.ExposedPorts) {
			continue
		}
		out = append(out, c)
		if opts.Limit > 0 && len(out) == opts.Limit {
			break
		}
	}
	return out, nil
}

func healthStatus(c *Container) string {
	if c.State.Health == nil || c.State.Health.Status == "" {
		return "none"
	}
	return string(c.State.Health.Status)
}

func anyMatch(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func containsInt(list []int, n int) bool {
	for _, v := range list {
		if v == n {
			return true
		}
	}
	return false
}

// labelsMatch: every filter "key" needs the label, "key=value" needs it
// with that value.
func labelsMatch(filters []string, labels map[string]string) bool {
	for _, f := range filters {
		k, v, hasValue := strings.Cut(f, "=")
		got, ok := labels[k]
		if !ok || (hasValue && got != v) {
			return false
		}
	}
	return true
}

func ancestorMatch(ancestors []string, c *Container) bool {
	ref := c.Config.Image
	for _, a := range ancestors {
		switch {
		case a == ref, a == c.Image, ref == a+":latest":
			return true
		case strings.HasPrefix(strings.TrimPrefix(c.Image, "sha256:"), strings.TrimPrefix(a, "sha256:")) && len(strings.TrimPrefix(a, "sha256:")) >= 4:
			return true
		}
	}
	return false
}

// volumeMatch is dockerd's volume filter: a mount's volume name (a bind's
// source) or its destination.
func volumeMatch(vals []string, c *Container) bool {
	for _, m := range c.MountPoints {
		key := m.Name
		if key == "" {
			key = m.Source
		}
		if contains(vals, key) || contains(vals, m.Destination) {
			return true
		}
	}
	return false
}

// portFilter is the set of ports that key's values name, as dockerd reads
// them: "80", "80/udp" or a range "8000-8080/tcp" (tcp by default).
func portFilter(key string, vals []string) (map[network.Port]bool, error) {
	set := map[network.Port]bool{}
	for _, v := range vals {
		if strings.Contains(v, ":") {
			return nil, fmt.Errorf("filter for '%s' should not contain ':': %s: %w", key, v, errdefs.ErrInvalidArgument)
		}
		r, err := network.ParsePortRange(v)
		if err != nil {
			return nil, fmt.Errorf("error while looking up for %s %s: %v: %w", key, v, err, errdefs.ErrInvalidArgument)
		}
		for p := range r.All() {
			set[p] = true
		}
	}
	return set, nil
}

// anyPort reports whether one of the ports keying m is in set: dockerd's
// publish filter looks at HostConfig.PortBindings, expose at
// Config.ExposedPorts.
func anyPort[V any](set map[network.Port]bool, m map[network.Port]V) bool {
	for p := range m {
		if set[p] {
			return true
		}
	}
	return false
}
