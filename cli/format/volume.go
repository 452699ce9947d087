package format

import (
	"strconv"

	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/volume"
)

// Default formats of docker volume ls.
const (
	VolumesTable = "table {{.Driver}}\t{{.Name}}"
	VolumesQuiet = "{{.Name}}"
)

// VolumeHeader names the columns of docker volume ls.
var VolumeHeader = map[string]string{
	"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
	"Labels": "LABELS", "Links": "LINKS", "Size": "SIZE", "CreatedAt": "CREATED AT",
	"Availability": "AVAILABILITY", "Group": "GROUP", "Status": "STATUS",
}

// Volume is one row of docker volume ls.
type Volume struct{ V volume.Volume }

// Header returns docker volume ls's column names.
func (v Volume) Header() map[string]string { return VolumeHeader }

// MarshalJSON is what {{json .}} prints.
func (v Volume) MarshalJSON() ([]byte, error) { return marshalMethods(v) }

// Name is the volume's name.
func (v Volume) Name() string { return v.V.Name }

// Driver is the volume's driver.
func (v Volume) Driver() string { return v.V.Driver }

// Scope is local.
func (v Volume) Scope() string { return v.V.Scope }

// Mountpoint is the volume's host path.
func (v Volume) Mountpoint() string { return v.V.Mountpoint }

// CreatedAt is the creation time as the daemon gave it.
func (v Volume) CreatedAt() string { return v.V.CreatedAt }

// Labels are the labels, k=v, sorted and comma-separated.
func (v Volume) Labels() string { return sortedJoin(v.V.Labels) }

// Label is one label's value.
func (v Volume) Label(name string) string { return v.V.Labels[name] }

// Links counts the containers using the volume, N/A when unknown.
func (v Volume) Links() string {
	if v.V.UsageData == nil {
		return "N/A"
	}
	return strconv.FormatInt(v.V.UsageData.RefCount, 10)
}

// Size is the volume's size, N/A when unknown.
func (v Volume) Size() string {
	if v.V.UsageData == nil || v.V.UsageData.Size < 0 {
		return "N/A"
	}
	return units.HumanSizeWithPrecision(float64(v.V.UsageData.Size), 3)
}

// Availability, Group and Status are cluster volumes' (empty here).
func (v Volume) Availability() string { return "" }

// Group is a cluster volume's group.
func (v Volume) Group() string { return "" }

// Status is a cluster volume's status.
func (v Volume) Status() string { return "" }
