package stats

import (
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/runtime/cgroups"
)

// Pids lists the host pids of every process in the container's cgroup and
// its sub-cgroups (cgroup.procs; on v1 from the pids, freezer or memory
// hierarchy, whichever has the cgroup), sorted. A cgroup that does not
// exist is errdefs.ErrNotFound.
func Pids(cgroupsPath string) ([]int, error) {
	if cgroupsPath == "" {
		return nil, fmt.Errorf("stats: empty cgroupsPath: %w", errdefs.ErrInvalidArgument)
	}
	m, err := cgroups.New(cgroupsPath, "")
	if err != nil {
		return nil, fmt.Errorf("stats: cgroup %s: %w", cgroupsPath, err)
	}
	pids, err := m.Pids()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("stats: processes of cgroup %s: %w (%w)", cgroupsPath, errdefs.ErrNotFound, err)
		}
		return nil, fmt.Errorf("stats: processes of cgroup %s: %w", cgroupsPath, err)
	}
	sort.Ints(pids)
	return pids, nil
}
