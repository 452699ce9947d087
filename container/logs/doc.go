// Package logs owns container logs in Docker's json-file format: the
// writer the shim feeds with a container's stdout and stderr (line
// splitting as Docker's log copier does, size-based rotation) and the
// reader berthd serves `docker logs` from (since, until, tail, follow
// across rotations, stream selection).
//
// On disk: one JSON object per line, exactly as dockerd writes it,
//
//	{"log":"hello\n","stream":"stdout","time":"2026-01-02T03:04:05.123456789Z"}
//
// with time in RFC 3339 (nanoseconds, trailing zeros trimmed) UTC. A line
// longer than 16 KiB is split into 16 KiB pieces without a trailing "\n";
// the piece that ends the line carries it, and output that ends without a
// newline is logged without one.
//
// Rotation: when the file has reached MaxSize bytes, the next entry goes to
// a fresh file and the old ones shift: <path> -> <path>.1 -> <path>.2 ...,
// keeping MaxFile files in all (MaxFile 1 truncates in place). Unlike
// Docker, whose json-file grows until the disk is full unless told
// otherwise, the default is bounded: DefaultMaxSize (20 MiB) times
// DefaultMaxFile (5), Docker's own defaults for its "local" driver.
package logs
