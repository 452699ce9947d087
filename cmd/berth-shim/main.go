// Command berth-shim stays with one container for its life: it holds the
// container's stdio, writes its log, reaps it and records its exit,
// independently of berthd. See package container/shim.
//
//	berth-shim STATEDIR   (fd 3 is the ready pipe; berthd starts it in a session of its own)
package main

import (
	"os"

	"github.com/berth-dev/berth/container/shim"
)

func main() {
	args := os.Args[1:]
	if len(args) != 1 || args[0] == "" || args[0][0] == '-' {
		os.Stderr.WriteString("usage: berth-shim STATEDIR\n")
		os.Exit(2)
	}
	if err := shim.Run(args[0], os.NewFile(3, "ready")); err != nil {
		os.Stderr.WriteString("berth-shim: " + err.Error() + "\n")
		os.Exit(1)
	}
}
