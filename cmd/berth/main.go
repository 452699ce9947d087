// Command berth is the Docker-compatible client of berthd (and of any
// Docker Engine API daemon).
package main

import (
	"os"

	"github.com/berth-dev/berth/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
