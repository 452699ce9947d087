// Command berth is the Docker-compatible client of berthd (and of any
// Docker Engine API daemon).
package main

import (
	"os"
	"runtime"

	"github.com/berth-dev/berth/cli"
)

func main() {
	// The client mostly waits on the daemon: a second P only makes the Go
	// runtime start threads that spin and park between requests (a clone
	// and context switches each, dear on a virtualised host; measured
	// 2-3 ms of a `run --rm`). build tars and hashes its context: it
	// keeps them all.
	if len(os.Args) < 2 || os.Args[1] != "build" {
		runtime.GOMAXPROCS(1)
	}
	os.Exit(cli.Main(os.Args[1:]))
}
