package format

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
)

// Default formats of docker ps.
const (
	PsTable      = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
	PsTableSize  = PsTable + "\t{{.Size}}"
	PsQuiet      = "{{.ID}}"
	psSizeHeader = "SIZE"
)

// ContainerHeader names the columns of docker ps.
var ContainerHeader = map[string]string{
	"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
	"RunningFor": "CREATED", "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES",
	"Size": psSizeHeader, "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
	"LocalVolumes": "LOCAL VOLUMES", "State": "STATE",
}

// Container is one row of docker ps.
type Container struct {
	C     container.Summary
	Trunc bool
	// Now is the time RunningFor is measured against.
	Now time.Time
	// sizeUsed records that a template asked for Size.
	sizeUsed *bool
}

// NeedsSize reports whether a ps format shows sizes, so the daemon must
// compute them (docker ps asks for them only then).
func NeedsSize(text string) bool {
	used := false
	probe := Container{Trunc: true, sizeUsed: &used}
	Write(io.Discard, Format(text), []Context{probe}, nil)
	return used
}

// Header returns docker ps's column names.
func (c Container) Header() map[string]string { return ContainerHeader }

// MarshalJSON is what {{json .}} prints.
func (c Container) MarshalJSON() ([]byte, error) { return marshalMethods(c) }

// ID is the container id, 12 characters unless --no-trunc.
func (c Container) ID() string {
	if c.Trunc {
		return TruncateID(c.C.ID)
	}
	return c.C.ID
}

// Names lists the names without their leading slash; truncated, only the
// first name that is not a link alias.
func (c Container) Names() string {
	names := make([]string, 0, len(c.C.Names))
	for _, n := range c.C.Names {
		names = append(names, strings.TrimPrefix(n, "/"))
	}
	if c.Trunc {
		for _, n := range names {
			if !strings.Contains(n, "/") {
				names = []string{n}
				break
			}
		}
	}
	return strings.Join(names, ",")
}

// Image is the image as the user named it, short forms when truncating.
func (c Container) Image() string {
	img := c.C.Image
	if img == "" {
		return "<no image>"
	}
	if !c.Trunc {
		return img
	}
	if t := TruncateID(c.C.ImageID); t == TruncateID(img) {
		return t
	}
	ref, err := reference.ParseNormalizedNamed(img)
	if err != nil {
		return img
	}
	if nt, ok := ref.(reference.NamedTagged); ok {
		if tagged, err := reference.WithTag(reference.TrimNamed(nt), nt.Tag()); err == nil {
			return reference.FamiliarString(tagged)
		}
		return img
	}
	return reference.FamiliarString(reference.TrimNamed(ref))
}

// Command is the quoted command line, 20 characters unless --no-trunc.
func (c Container) Command() string {
	cmd := c.C.Command
	if c.Trunc {
		cmd = Ellipsis(cmd, 20)
	}
	return strconv.Quote(cmd)
}

// CreatedAt is the creation time as Go prints a time.
func (c Container) CreatedAt() string { return time.Unix(c.C.Created, 0).String() }

// RunningFor is "<duration> ago" since creation.
func (c Container) RunningFor() string {
	return units.HumanDuration(c.now().Sub(time.Unix(c.C.Created, 0))) + " ago"
}

func (c Container) now() time.Time {
	if c.Now.IsZero() {
		return time.Now().UTC()
	}
	return c.Now
}

// Ports are the published and exposed ports, ranges grouped.
func (c Container) Ports() string { return DisplayablePorts(c.C.Ports) }

// State is the state word: running, exited, created ...
func (c Container) State() string { return string(c.C.State) }

// Status is the daemon's status text ("Up 3 seconds").
func (c Container) Status() string { return c.C.Status }

// Size is the writable layer's size and the virtual size.
func (c Container) Size() string {
	if c.sizeUsed != nil {
		*c.sizeUsed = true
	}
	srw := units.HumanSizeWithPrecision(float64(c.C.SizeRw), 3)
	if c.C.SizeRootFs > 0 {
		return fmt.Sprintf("%s (virtual %s)", srw, units.HumanSizeWithPrecision(float64(c.C.SizeRootFs), 3))
	}
	return srw
}

// Labels are "k=v" pairs joined by commas.
func (c Container) Labels() string { return sortedJoin(c.C.Labels) }

// Label returns the value of one label.
func (c Container) Label(name string) string { return c.C.Labels[name] }

// Mounts names the mounted volumes (or their sources).
func (c Container) Mounts() string {
	var names []string
	for _, m := range c.C.Mounts {
		n := m.Name
		if n == "" {
			n = m.Source
		}
		if c.Trunc {
			n = Ellipsis(n, 15)
		}
		names = append(names, n)
	}
	return strings.Join(names, ",")
}

// LocalVolumes counts the mounts of local volumes.
func (c Container) LocalVolumes() string {
	n := 0
	for _, m := range c.C.Mounts {
		if m.Driver == "local" {
			n++
		}
	}
	return strconv.Itoa(n)
}

// Networks names the networks the container is attached to.
func (c Container) Networks() string {
	if c.C.NetworkSettings == nil {
		return ""
	}
	var names []string
	for n := range c.C.NetworkSettings.Networks {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// DisplayablePorts renders ports as Docker's ps does:
// "0.0.0.0:8080->80/tcp, 443/tcp", consecutive ports as ranges.
func DisplayablePorts(ports []container.PortSummary) string {
	type key struct{ ip, proto string }
	type span struct {
		key
		pubFirst, pubLast, privFirst, privLast uint16
	}
	ps := append([]container.PortSummary(nil), ports...)
	// Exposed-only ports first, then the published ones, as docker ps.
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if (a.PublicPort == 0) != (b.PublicPort == 0) {
			return a.PublicPort == 0
		}
		if a.IP.String() != b.IP.String() {
			return a.IP.String() < b.IP.String()
		}
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		if a.PublicPort != b.PublicPort {
			return a.PublicPort < b.PublicPort
		}
		return a.PrivatePort < b.PrivatePort
	})
	var spans []span
	for _, p := range ps {
		ip := ""
		if p.IP.IsValid() {
			ip = p.IP.String()
		}
		k := key{ip, p.Type}
		if n := len(spans); n > 0 {
			last := &spans[n-1]
			if last.key == k && last.privLast+1 == p.PrivatePort &&
				((p.PublicPort == 0 && last.pubLast == 0) || (last.pubLast != 0 && last.pubLast+1 == p.PublicPort)) {
				last.privLast = p.PrivatePort
				if p.PublicPort != 0 {
					last.pubLast = p.PublicPort
				}
				continue
			}
		}
		spans = append(spans, span{k, p.PublicPort, p.PublicPort, p.PrivatePort, p.PrivatePort})
	}
	rng := func(a, b uint16) string {
		if a == b {
			return strconv.Itoa(int(a))
		}
		return fmt.Sprintf("%d-%d", a, b)
	}
	out := make([]string, 0, len(spans))
	for _, s := range spans {
		priv := rng(s.privFirst, s.privLast) + "/" + s.proto
		if s.pubFirst == 0 {
			out = append(out, priv)
			continue
		}
		host := s.ip
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		out = append(out, fmt.Sprintf("%s:%s->%s", host, rng(s.pubFirst, s.pubLast), priv))
	}
	return strings.Join(out, ", ")
}
