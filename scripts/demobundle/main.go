// Command demobundle writes the `make demo` bundle: a FROM-scratch-style
// rootfs holding only /berth-whoami (plus empty /proc /sys /dev /tmp) and a
// config.json from `<runtime> spec`, edited to run /berth-whoami with a
// memory and pids limit, hostname berth-demo and a cgroup namespace.
//
//	go run ./scripts/demobundle -dir DIR -whoami bin/berth-whoami -runtime bin/berth-runtime
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/testutil/fixture"
)

func main() {
	dir := flag.String("dir", "", "bundle directory to create")
	whoami := flag.String("whoami", "bin/berth-whoami", "the static berth-whoami binary")
	runtime := flag.String("runtime", "bin/berth-runtime", "runtime whose `spec` gives the base config")
	memory := flag.Int64("memory", 64<<20, "memory limit in bytes")
	pids := flag.Int64("pids", 32, "pids limit")
	cgroupsPath := flag.String("cgroups-path", "", "linux.cgroupsPath (default: runtime's choice)")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "demobundle: -dir is required")
		os.Exit(2)
	}
	if err := write(*dir, *whoami, *runtime, *memory, *pids, *cgroupsPath); err != nil {
		fmt.Fprintln(os.Stderr, "demobundle:", err)
		os.Exit(1)
	}
}

func write(dir, whoami, runtime string, memory, pids int64, cgroupsPath string) error {
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"proc", "sys", "dev", "tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return err
		}
	}
	if err := copyExe(whoami, filepath.Join(rootfs, "berth-whoami")); err != nil {
		return err
	}
	spec, err := runtimeSpec(dir, runtime)
	if err != nil {
		fmt.Fprintf(os.Stderr, "demobundle: %v; using the test suite's default spec\n", err)
		spec = fixture.DefaultSpec()
	}
	spec.Root = &specs.Root{Path: "rootfs", Readonly: true}
	spec.Hostname = "berth-demo"
	spec.Process.Terminal = false
	spec.Process.Args = []string{"/berth-whoami"}
	spec.Process.Env = []string{"PATH=/"}
	if spec.Linux == nil {
		spec.Linux = &specs.Linux{}
	}
	hasCgroupNS := false
	for _, ns := range spec.Linux.Namespaces {
		hasCgroupNS = hasCgroupNS || ns.Type == specs.CgroupNamespace
	}
	if !hasCgroupNS {
		spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	if spec.Linux.Resources == nil {
		spec.Linux.Resources = &specs.LinuxResources{}
	}
	spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &memory}
	spec.Linux.Resources.Pids = &specs.LinuxPids{Limit: &pids}
	if cgroupsPath != "" {
		spec.Linux.CgroupsPath = cgroupsPath
	}
	data, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644)
}

// runtimeSpec runs `runtime spec --bundle dir` and reads what it wrote.
func runtimeSpec(dir, runtime string) (*specs.Spec, error) {
	out, err := exec.Command(runtime, "spec", "--bundle", dir).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s spec: %v: %s", runtime, err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s spec wrote an invalid config.json: %w", runtime, err)
	}
	if s.Process == nil {
		return nil, fmt.Errorf("%s spec wrote no process", runtime)
	}
	return &s, nil
}

func copyExe(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
