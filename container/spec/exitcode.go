package spec

import "strings"

// ExitCodeOf returns the exit code dockerd records (and `docker run`
// exits with) when the runtime fails to start the container's process,
// given the runtime's error text: 127 when the command does not exist (or
// a mount puts a file on a directory), 126 when it cannot be invoked
// (permission denied, a directory), and 128 for any other start failure.
func ExitCodeOf(runtimeError string) int {
	e := strings.ToLower(runtimeError)
	switch {
	case strings.Contains(e, "not a directory"):
		return 127
	case strings.Contains(e, "permission denied"), strings.Contains(e, "is a directory"):
		return 126
	case strings.Contains(e, "executable file not found"),
		strings.Contains(e, "no such file or directory"),
		strings.Contains(e, "system cannot find the file specified"):
		return 127
	}
	return 128
}
