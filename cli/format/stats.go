package format

import (
	"fmt"
	"strings"

	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
)

// StatsTable is docker stats's default format.
const StatsTable = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"

// StatsHeader names the columns of docker stats.
var StatsHeader = map[string]string{
	"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
	"MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
}

// StatsEntry is one container's figures, computed from a stats sample.
type StatsEntry struct {
	Container, IDV, NameV               string
	CPUPercentage, Memory, MemoryLimit  float64
	MemoryPercentage                    float64
	NetRx, NetTx, BlockRead, BlockWrite float64
	PidsCurrent                         uint64
	// Missing: no sample yet or the container stopped: "--" everywhere.
	Missing bool
}

// Stats is one row of docker stats.
type Stats struct {
	S     StatsEntry
	Trunc bool
}

// Header returns docker stats's column names.
func (s Stats) Header() map[string]string { return StatsHeader }

// MarshalJSON is what {{json .}} prints.
func (s Stats) MarshalJSON() ([]byte, error) { return marshalMethods(s) }

// Container is the name or id the user asked for.
func (s Stats) Container() string { return s.S.Container }

// Name is the container's name without its slash.
func (s Stats) Name() string {
	if n := strings.TrimPrefix(s.S.NameV, "/"); n != "" {
		return n
	}
	return "--"
}

// ID is the container id, 12 characters unless --no-trunc.
func (s Stats) ID() string {
	if s.Trunc {
		return TruncateID(s.S.IDV)
	}
	return s.S.IDV
}

// CPUPerc is the CPU use in percent of one CPU.
func (s Stats) CPUPerc() string {
	if s.S.Missing {
		return "--"
	}
	return fmt.Sprintf("%.2f%%", s.S.CPUPercentage)
}

// MemUsage is "usage / limit" in binary units.
func (s Stats) MemUsage() string {
	if s.S.Missing {
		return "-- / --"
	}
	return units.BytesSize(s.S.Memory) + " / " + units.BytesSize(s.S.MemoryLimit)
}

// MemPerc is the memory use in percent of the limit.
func (s Stats) MemPerc() string {
	if s.S.Missing {
		return "--"
	}
	return fmt.Sprintf("%.2f%%", s.S.MemoryPercentage)
}

// NetIO is "received / sent".
func (s Stats) NetIO() string {
	if s.S.Missing {
		return "--"
	}
	return units.HumanSizeWithPrecision(s.S.NetRx, 3) + " / " + units.HumanSizeWithPrecision(s.S.NetTx, 3)
}

// BlockIO is "read / written".
func (s Stats) BlockIO() string {
	if s.S.Missing {
		return "--"
	}
	return units.HumanSizeWithPrecision(s.S.BlockRead, 3) + " / " + units.HumanSizeWithPrecision(s.S.BlockWrite, 3)
}

// PIDs is the number of processes.
func (s Stats) PIDs() string {
	if s.S.Missing {
		return "--"
	}
	return fmt.Sprintf("%d", s.S.PidsCurrent)
}

// Compute fills e's figures from one sample, as Docker's CLI computes
// them (memory without the page cache; CPU against the host's time).
func (e *StatsEntry) Compute(v *container.StatsResponse) {
	e.NameV = v.Name
	if v.ID != "" {
		e.IDV = v.ID
	}
	cpuDelta := float64(v.CPUStats.CPUUsage.TotalUsage) - float64(v.PreCPUStats.CPUUsage.TotalUsage)
	sysDelta := float64(v.CPUStats.SystemUsage) - float64(v.PreCPUStats.SystemUsage)
	online := float64(v.CPUStats.OnlineCPUs)
	if online == 0 {
		online = float64(len(v.CPUStats.CPUUsage.PercpuUsage))
	}
	e.CPUPercentage = 0
	if sysDelta > 0 && cpuDelta > 0 {
		e.CPUPercentage = cpuDelta / sysDelta * online * 100
	}
	mem := float64(v.MemoryStats.Usage)
	if c, ok := v.MemoryStats.Stats["total_inactive_file"]; ok && float64(c) < mem {
		mem -= float64(c)
	} else if c, ok := v.MemoryStats.Stats["inactive_file"]; ok && float64(c) < mem {
		mem -= float64(c)
	}
	e.Memory, e.MemoryLimit = mem, float64(v.MemoryStats.Limit)
	e.MemoryPercentage = 0
	if e.MemoryLimit != 0 {
		e.MemoryPercentage = mem / e.MemoryLimit * 100
	}
	e.NetRx, e.NetTx = 0, 0
	for _, n := range v.Networks {
		e.NetRx += float64(n.RxBytes)
		e.NetTx += float64(n.TxBytes)
	}
	e.BlockRead, e.BlockWrite = 0, 0
	for _, b := range v.BlkioStats.IoServiceBytesRecursive {
		switch strings.ToLower(b.Op) {
		case "read":
			e.BlockRead += float64(b.Value)
		case "write":
			e.BlockWrite += float64(b.Value)
		}
	}
	e.PidsCurrent = v.PidsStats.Current
	e.Missing = false
}
