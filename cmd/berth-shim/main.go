// Command berth-shim stays with one container for its life: it holds the
// container's stdio, writes its log, reaps it and records its exit,
// independently of berthd. See package container/shim.
//
//	berth-shim --launch STATEDIR   (what berthd runs: starts the shim detached)
//	berth-shim STATEDIR            (the shim itself; fd 3 is the ready pipe)
package main

import (
	"os"

	"github.com/berth-dev/berth/container/shim"
)

func main() {
	args := os.Args[1:]
	launch := len(args) == 2 && args[0] == "--launch"
	if launch {
		args = args[1:]
	}
	if len(args) != 1 || args[0] == "" || args[0][0] == '-' {
		os.Stderr.WriteString("usage: berth-shim [--launch] STATEDIR\n")
		os.Exit(2)
	}
	var err error
	if launch {
		err = shim.Launch(args[0])
	} else {
		err = shim.Run(args[0], os.NewFile(3, "ready"))
	}
	if err != nil {
		os.Stderr.WriteString("berth-shim: " + err.Error() + "\n")
		os.Exit(1)
	}
}
