package spec

import (
	"slices"
	"strings"

	"github.com/moby/moby/api/types/container"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultPath is the PATH a container gets when neither the image nor the
// user sets one (dockerd's).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// MergeImageConfig fills cfg from the image's config as dockerd does at
// create, so that inspect shows the merged result: user env first, then
// the image's variables the user did not set; Cmd from the image only when
// the user gave neither Cmd nor Entrypoint (an --entrypoint resets the
// image's Cmd); Entrypoint, WorkingDir, User, StopSignal, ExposedPorts,
// Volumes and Labels from the image when the user left them empty. It is
// idempotent.
func MergeImageConfig(cfg *container.Config, img ocispec.ImageConfig) {
	if cfg.User == "" {
		cfg.User = img.User
	}
	if len(cfg.Env) == 0 {
		cfg.Env = slices.Clone(img.Env)
	} else {
		for _, ie := range img.Env {
			key, _, _ := strings.Cut(ie, "=")
			found := false
			for _, ue := range cfg.Env {
				if k, _, _ := strings.Cut(ue, "="); k == key {
					found = true
					break
				}
			}
			if !found {
				cfg.Env = append(cfg.Env, ie)
			}
		}
	}
	if len(cfg.Entrypoint) == 0 {
		if len(cfg.Cmd) == 0 {
			cfg.Cmd = slices.Clone(img.Cmd)
		}
		// A nil Entrypoint takes the image's; an empty non-nil one
		// (--entrypoint "") clears it.
		if cfg.Entrypoint == nil {
			cfg.Entrypoint = slices.Clone(img.Entrypoint)
		}
	}
	if cfg.WorkingDir == "" {
		cfg.WorkingDir = img.WorkingDir
	}
	if cfg.StopSignal == "" {
		cfg.StopSignal = img.StopSignal
	}
	if len(img.Labels) > 0 {
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for k, v := range img.Labels {
			if _, ok := cfg.Labels[k]; !ok {
				cfg.Labels[k] = v
			}
		}
	}
	if len(img.Volumes) > 0 {
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for k := range img.Volumes {
			cfg.Volumes[k] = struct{}{}
		}
	}
}

// processArgs is the command line: Entrypoint then Cmd, after merging.
func processArgs(cfg *container.Config) []string {
	args := append(slices.Clone([]string(cfg.Entrypoint)), cfg.Cmd...)
	// --entrypoint "" arrives as [""]: no entrypoint at all.
	if len(cfg.Entrypoint) == 1 && cfg.Entrypoint[0] == "" {
		args = slices.Clone(cfg.Cmd)
	}
	return args
}

// processEnv is dockerd's container environment: PATH (the default unless
// set), HOSTNAME, TERM=xterm with a TTY, then the container's variables,
// each replacing a default of the same name in place. A variable without
// "=" removes the default of that name.
func processEnv(cfg *container.Config, hostname string) []string {
	env := []string{"PATH=" + DefaultPath, "HOSTNAME=" + hostname}
	if cfg.Tty {
		env = append(env, "TERM=xterm")
	}
	for _, kv := range cfg.Env {
		key, _, hasValue := strings.Cut(kv, "=")
		i := slices.IndexFunc(env, func(e string) bool { k, _, _ := strings.Cut(e, "="); return k == key })
		switch {
		case i >= 0 && hasValue:
			env[i] = kv
		case i >= 0:
			env = slices.Delete(env, i, i+1)
		case hasValue:
			env = append(env, kv)
		}
	}
	return env
}
