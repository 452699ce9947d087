// Package change owns the `--change` option of docker commit and docker
// import: Dockerfile instructions (CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK,
// LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL) applied to an image's config.
package change

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
)

// Apply applies the instructions changes to c in order. A malformed or
// unsupported instruction is errdefs.ErrInvalidArgument and leaves c
// partly changed.
func Apply(c *container.Config, changes []string) error {
	for _, ch := range changes {
		if err := applyOne(c, ch); err != nil {
			return err
		}
	}
	return nil
}

func applyOne(c *container.Config, ch string) error {
	ch = strings.TrimSpace(ch)
	instr, rest, _ := strings.Cut(ch, " ")
	rest = strings.TrimSpace(rest)
	bad := func(why string) error {
		return fmt.Errorf("change %q: %s: %w", ch, why, errdefs.ErrInvalidArgument)
	}
	if rest == "" {
		return bad(strings.ToUpper(instr) + " requires at least one argument")
	}
	switch strings.ToUpper(instr) {
	case "CMD", "ENTRYPOINT":
		var argv []string
		if strings.HasPrefix(rest, "[") {
			if err := json.Unmarshal([]byte(rest), &argv); err != nil {
				return bad("not a JSON array of strings")
			}
		} else {
			argv = []string{"/bin/sh", "-c", rest}
		}
		if strings.EqualFold(instr, "CMD") {
			c.Cmd = argv
		} else {
			c.Entrypoint = argv
		}
	case "ENV":
		kvs, err := keyValues(rest)
		if err != nil {
			return bad(err.Error())
		}
		for _, kv := range kvs {
			key, _, _ := strings.Cut(kv, "=")
			replaced := false
			for i, e := range c.Env {
				if strings.HasPrefix(e, key+"=") {
					c.Env[i], replaced = kv, true
				}
			}
			if !replaced {
				c.Env = append(c.Env, kv)
			}
		}
	case "LABEL":
		kvs, err := keyValues(rest)
		if err != nil {
			return bad(err.Error())
		}
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		for _, kv := range kvs {
			k, v, _ := strings.Cut(kv, "=")
			c.Labels[k] = v
		}
	case "EXPOSE":
		if c.ExposedPorts == nil {
			c.ExposedPorts = network.PortSet{}
		}
		for _, p := range strings.Fields(rest) {
			port, err := network.ParsePort(p)
			if err != nil {
				return bad(err.Error())
			}
			c.ExposedPorts[port] = struct{}{}
		}
	case "VOLUME":
		var vols []string
		if strings.HasPrefix(rest, "[") {
			if err := json.Unmarshal([]byte(rest), &vols); err != nil {
				return bad("not a JSON array of strings")
			}
		} else {
			vols = strings.Fields(rest)
		}
		if c.Volumes == nil {
			c.Volumes = map[string]struct{}{}
		}
		for _, v := range vols {
			c.Volumes[v] = struct{}{}
		}
	case "USER":
		c.User = rest
	case "WORKDIR":
		c.WorkingDir = rest
	case "STOPSIGNAL":
		c.StopSignal = rest
	case "HEALTHCHECK":
		h, err := healthcheck(ch)
		if err != nil {
			return bad(err.Error())
		}
		c.Healthcheck = h
	default:
		// dockerd's words; the instructions it takes are above.
		return fmt.Errorf("%s is not a valid change command: %w", strings.ToLower(instr), errdefs.ErrInvalidArgument)
	}
	return nil
}

// healthcheck parses a HEALTHCHECK instruction with the Dockerfile parser,
// flags (--interval, --timeout, --start-period, --start-interval,
// --retries) and all, as a build would.
func healthcheck(line string) (*container.HealthConfig, error) {
	res, err := parser.Parse(strings.NewReader(line))
	if err != nil {
		return nil, err
	}
	if len(res.AST.Children) != 1 {
		return nil, fmt.Errorf("one instruction expected")
	}
	inst, err := instructions.ParseInstruction(res.AST.Children[0])
	if err != nil {
		return nil, err
	}
	hc, ok := inst.(*instructions.HealthCheckCommand)
	if !ok || hc.Health == nil {
		return nil, fmt.Errorf("not a HEALTHCHECK")
	}
	h := hc.Health
	return &container.HealthConfig{
		Test: slices.Clone(h.Test), Interval: h.Interval, Timeout: h.Timeout,
		StartPeriod: h.StartPeriod, StartInterval: h.StartInterval, Retries: h.Retries,
	}, nil
}

// ApplyImageConfig is Apply for an OCI image config (docker import); a
// HEALTHCHECK, which the OCI config has no field for, is returned.
func ApplyImageConfig(c *ocispec.ImageConfig, changes []string) (*container.HealthConfig, error) {
	cc := container.Config{
		User: c.User, Env: c.Env, Entrypoint: c.Entrypoint, Cmd: c.Cmd,
		Volumes: c.Volumes, WorkingDir: c.WorkingDir, Labels: c.Labels, StopSignal: c.StopSignal,
	}
	for p := range c.ExposedPorts {
		port, err := network.ParsePort(p)
		if err != nil {
			return nil, fmt.Errorf("exposed port %q of the config: %w", p, errdefs.ErrInvalidArgument)
		}
		if cc.ExposedPorts == nil {
			cc.ExposedPorts = network.PortSet{}
		}
		cc.ExposedPorts[port] = struct{}{}
	}
	if err := Apply(&cc, changes); err != nil {
		return nil, err
	}
	c.User, c.Env, c.Entrypoint, c.Cmd = cc.User, cc.Env, cc.Entrypoint, cc.Cmd
	c.Volumes, c.WorkingDir, c.Labels, c.StopSignal = cc.Volumes, cc.WorkingDir, cc.Labels, cc.StopSignal
	c.ExposedPorts = nil
	for p := range maps.Keys(cc.ExposedPorts) {
		if c.ExposedPorts == nil {
			c.ExposedPorts = map[string]struct{}{}
		}
		c.ExposedPorts[p.String()] = struct{}{}
	}
	return cc.Healthcheck, nil
}

// keyValues parses "K=V K2=V2" or the legacy "K V" form; values may be
// double-quoted.
func keyValues(s string) ([]string, error) {
	if k, v, ok := strings.Cut(s, " "); ok && !strings.Contains(k, "=") {
		return []string{k + "=" + strings.TrimSpace(v)}, nil
	}
	var out []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		k, rest, ok := strings.Cut(s, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \"") {
			return nil, fmt.Errorf("%q is not KEY=VALUE", s)
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				return nil, fmt.Errorf("unterminated quote in %q", s)
			}
			v, s = rest[1:end+1], rest[end+2:]
		} else {
			v, s, _ = strings.Cut(rest, " ")
		}
		out = append(out, k+"="+v)
	}
	return out, nil
}
