package stats

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// readString returns the trimmed content of dir/name.
func readString(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// readUint reads a one-number file. "max" (v2's "unlimited") reads as
// math.MaxUint64; callers that report unlimited differently map it.
func readUint(dir, name string) (uint64, error) {
	s, err := readString(dir, name)
	if err != nil {
		return 0, err
	}
	if s == "max" {
		return math.MaxUint64, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stats: %s: %q is not a number", filepath.Join(dir, name), s)
	}
	return v, nil
}

// readKV parses "key value" lines (memory.stat, cpu.stat, cpuacct.stat).
// Lines whose value is not a number are skipped.
func readKV(dir, name string) (map[string]uint64, error) {
	s, err := readString(dir, name)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, nil
}

// parseDevice parses "8:0".
func parseDevice(s string) (major, minor uint64, ok bool) {
	a, b, found := strings.Cut(s, ":")
	if !found {
		return 0, 0, false
	}
	ma, err1 := strconv.ParseUint(a, 10, 64)
	mi, err2 := strconv.ParseUint(b, 10, 64)
	return ma, mi, err1 == nil && err2 == nil
}
