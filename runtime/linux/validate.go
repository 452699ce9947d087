package linux

import (
	"errors"
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/runtime/caps"
)

// validate refuses, before anything is created, a config this runtime
// cannot honour exactly: silently ignoring a wall is never an option.
func validate(spec *specs.Spec) error {
	if spec.Root == nil || spec.Root.Path == "" {
		return errors.New("config: root.path is required")
	}
	if spec.Process == nil {
		return errors.New("config: process is required")
	}
	if spec.Linux == nil {
		return errors.New("config: linux section is required")
	}
	if err := validateProcess(spec.Process); err != nil {
		return err
	}
	l := spec.Linux
	seen := map[specs.LinuxNamespaceType]bool{}
	for _, ns := range l.Namespaces {
		if _, ok := nsFlags[ns.Type]; !ok {
			return fmt.Errorf("config: unknown namespace type %q", ns.Type)
		}
		if seen[ns.Type] {
			return fmt.Errorf("config: namespace %q listed twice", ns.Type)
		}
		seen[ns.Type] = true
	}
	if !seen[specs.MountNamespace] {
		return errors.New("config: a mount namespace is required (the rootfs is set up inside it)")
	}
	newUser := false
	for _, ns := range l.Namespaces {
		if ns.Type == specs.UserNamespace && ns.Path == "" {
			newUser = true
		}
	}
	if newUser && (len(l.UIDMappings) == 0 || len(l.GIDMappings) == 0) {
		return errors.New("config: a new user namespace needs uidMappings and gidMappings")
	}
	if !seen[specs.UserNamespace] && (len(l.UIDMappings) > 0 || len(l.GIDMappings) > 0) {
		return errors.New("config: uidMappings/gidMappings given without a user namespace")
	}
	if len(l.TimeOffsets) > 0 && !seen[specs.TimeNamespace] {
		return errors.New("config: timeOffsets given without a time namespace")
	}
	if spec.Hostname != "" && !seen[specs.UTSNamespace] {
		return errors.New("config: hostname needs a new uts namespace")
	}
	if spec.Domainname != "" && !seen[specs.UTSNamespace] {
		return errors.New("config: domainname needs a new uts namespace")
	}
	for k := range l.Sysctl {
		if err := validateSysctl(k, seen); err != nil {
			return err
		}
	}
	if l.IntelRdt != nil {
		return errors.New("config: linux.intelRdt is not supported by berth-runtime")
	}
	if l.MountLabel != "" {
		return errors.New("config: linux.mountLabel: SELinux is not supported on this host")
	}
	if l.Personality != nil {
		return errors.New("config: linux.personality is not supported by berth-runtime")
	}
	for _, m := range spec.Mounts {
		if m.Destination == "" {
			return fmt.Errorf("config: mount of %q has no destination", m.Source)
		}
		if !strings.HasPrefix(m.Destination, "/") {
			return fmt.Errorf("config: mount destination %q must be absolute", m.Destination)
		}
	}
	return nil
}

func validateProcess(p *specs.Process) error {
	if len(p.Args) == 0 {
		return errors.New("config: process.args must not be empty")
	}
	if p.Cwd != "" && !strings.HasPrefix(p.Cwd, "/") {
		return fmt.Errorf("config: process.cwd %q must be absolute", p.Cwd)
	}
	if p.ApparmorProfile != "" {
		return fmt.Errorf("config: process.apparmorProfile %q: AppArmor is not supported on this host", p.ApparmorProfile)
	}
	if p.SelinuxLabel != "" {
		return fmt.Errorf("config: process.selinuxLabel %q: SELinux is not supported on this host", p.SelinuxLabel)
	}
	if _, err := caps.New(p.Capabilities); err != nil {
		return fmt.Errorf("config: process.capabilities: %w", err)
	}
	for _, rl := range p.Rlimits {
		if _, ok := rlimitTypes[rl.Type]; !ok {
			return fmt.Errorf("config: unknown rlimit type %q", rl.Type)
		}
	}
	return nil
}

// validateSysctl allows only sysctls the container's own namespaces
// scope: anything else would change the host.
func validateSysctl(key string, ns map[specs.LinuxNamespaceType]bool) error {
	ipc := map[string]bool{"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true, "kernel.sem": true,
		"kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true, "kernel.shm_rmid_forced": true}
	switch {
	case ipc[key] || strings.HasPrefix(key, "fs.mqueue."):
		if !ns[specs.IPCNamespace] {
			return fmt.Errorf("config: sysctl %q needs a new ipc namespace", key)
		}
	case strings.HasPrefix(key, "net."):
		if !ns[specs.NetworkNamespace] {
			return fmt.Errorf("config: sysctl %q needs a new network namespace", key)
		}
	case key == "kernel.hostname" || key == "kernel.domainname":
		if !ns[specs.UTSNamespace] {
			return fmt.Errorf("config: sysctl %q needs a new uts namespace", key)
		}
	default:
		return fmt.Errorf("config: sysctl %q is not namespaced: it would change the host", key)
	}
	return nil
}
