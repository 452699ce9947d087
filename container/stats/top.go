package stats

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
)

// Top runs the host's ps with psArgs (default "-ef", split at spaces, as
// dockerd does) and keeps the rows of pids, the container's processes in
// the host's pid namespace. Titles are ps's header; the last column keeps
// its spaces (the command line). Errors carry dockerd's messages, which
// clients show as they are.
func Top(pids []int, psArgs string) (container.TopResponse, error) {
	if psArgs == "" {
		psArgs = "-ef"
	}
	if err := validatePSArgs(psArgs); err != nil {
		return container.TopResponse{}, err
	}
	args := strings.Fields(psArgs)
	var out []byte
	var err error
	if len(pids) > 0 {
		// Asking ps for the container's pids only keeps it fast on a busy
		// host. Some formats refuse -q (e.g. "f"); then list everything.
		out, err = exec.Command("ps", append(args, "-q", joinPids(pids))...).Output()
	}
	if len(pids) == 0 || err != nil {
		out, err = exec.Command("ps", args...).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				// ps's first line of stderr says what was wrong with psArgs.
				if line, _, _ := bytes.Cut(ee.Stderr, []byte{'\n'}); len(line) > 0 {
					err = errors.New(string(line))
				}
			}
			return container.TopResponse{}, fmt.Errorf("ps: %w", err)
		}
	}
	return parsePS(out, pids)
}

func joinPids(pids []int) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ",")
}

// pidRenameRe finds "name=PID..." in a -o list: renaming a column to a
// title starting with PID would make the PID column ambiguous.
var pidRenameRe = regexp.MustCompile(`\s+([^\s]*)=\s*(PID[^\s]*)`)

func validatePSArgs(psArgs string) error {
	for _, m := range pidRenameRe.FindAllStringSubmatch(psArgs, -1) {
		if m[1] != "pid" {
			return fmt.Errorf("specifying \"%s=%s\" is not allowed", m[1], m[2])
		}
	}
	return nil
}

// parsePS keeps the rows of ps output whose PID is in pids, and the thread
// rows ("-" in the PID column, with "m" or "-L" style options) that follow
// such a row.
func parsePS(out []byte, pids []int) (container.TopResponse, error) {
	want := make(map[int]bool, len(pids))
	for _, p := range pids {
		want[p] = true
	}
	lines := strings.Split(string(out), "\n")
	resp := container.TopResponse{Titles: fieldsASCII(lines[0])}
	pidCol := -1
	for i, t := range resp.Titles {
		if t == "PID" {
			pidCol = i
			break
		}
	}
	if pidCol < 0 {
		return container.TopResponse{}, errors.New("Couldn't find PID field in ps output")
	}
	inContainer := false
	for _, line := range lines[1:] {
		fl := fieldsASCII(line)
		if len(fl) == 0 {
			continue
		}
		if len(fl) <= pidCol {
			return container.TopResponse{}, fmt.Errorf("ps output line %q has no PID column", line)
		}
		if fl[pidCol] == "-" {
			if inContainer {
				resp.Processes = append(resp.Processes, row(fl, len(resp.Titles)))
			}
			continue
		}
		p, err := strconv.Atoi(fl[pidCol])
		if err != nil {
			return container.TopResponse{}, fmt.Errorf("Unexpected pid '%s': %s", fl[pidCol], err)
		}
		inContainer = want[p]
		if inContainer {
			resp.Processes = append(resp.Processes, row(fl, len(resp.Titles)))
		}
	}
	return resp, nil
}

// row joins the fields past the last title (the command's arguments)
// into the last column.
func row(fields []string, titles int) []string {
	if len(fields) <= titles {
		return fields
	}
	r := append([]string{}, fields[:titles-1]...)
	return append(r, strings.Join(fields[titles-1:], " "))
}

// fieldsASCII splits at ASCII white space only, so that a command line
// holding other Unicode spaces stays one field, as in dockerd.
func fieldsASCII(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		switch r {
		case ' ', '\t', '\n', '\f', '\r', '\v':
			return true
		}
		return false
	})
}
