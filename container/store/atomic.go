package store

import "github.com/berth-dev/berth/internal/atomicfile"

// tmpPrefix starts the names of records being written; a crash leaves at
// most such a file, which Open removes.
const tmpPrefix = atomicfile.TempPrefix

// writeFileAtomic replaces a record crash-safely and durably.
func writeFileAtomic(path string, data []byte) error { return atomicfile.WriteFile(path, data, 0o600) }

// replaceFile replaces a record crash-safely (a reader finds the old or
// the new one, whole) without waiting for the disk.
func replaceFile(path string, data []byte) error { return atomicfile.Replace(path, data, 0o600) }

func syncDir(dir string) error { return atomicfile.SyncDir(dir) }
