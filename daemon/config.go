// Package daemon wires berthd together: its configuration (dockerd's
// flags and daemon.json), the locks that keep two daemons off one state,
// the API listeners, the image service, the events bus and the container
// backend, and an orderly shutdown.
package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/berth-dev/berth/internal/idmap"
)

// Defaults, as dockerd's with "docker" replaced by "berth".
const (
	DefaultDataRoot   = "/var/lib/berth"
	DefaultExecRoot   = "/run/berth"
	DefaultHost       = "unix:///run/berth/berth.sock"
	DefaultConfigFile = "/etc/berth/daemon.json"
)

// Config is berthd's configuration. The JSON names are daemon.json's keys
// (dockerd's where dockerd has the option).
type Config struct {
	DataRoot           string   `json:"data-root,omitempty"`
	ExecRoot           string   `json:"exec-root,omitempty"`
	Hosts              []string `json:"hosts,omitempty"`
	LogLevel           string   `json:"log-level,omitempty"`
	Debug              bool     `json:"debug,omitempty"`
	InsecureRegistries []string `json:"insecure-registries,omitempty"`
	RegistryMirrors    []string `json:"registry-mirrors,omitempty"`
	Pidfile            string   `json:"pidfile,omitempty"`
	TLSVerify          bool     `json:"tlsverify,omitempty"`
	TLSCACert          string   `json:"tlscacert,omitempty"`
	TLSCert            string   `json:"tlscert,omitempty"`
	TLSKey             string   `json:"tlskey,omitempty"`
	// AllowPlainTCP lets a tcp:// host serve without TLS client
	// verification: anyone reaching the port is root on this machine.
	AllowPlainTCP bool `json:"allow-plain-tcp,omitempty"`
	Experimental  bool `json:"experimental,omitempty"`

	// MaxBuildContext caps a build context in bytes (0: 2 GiB).
	MaxBuildContext int64 `json:"max-build-context,omitempty"`
	// CgroupParent is the parent cgroup of containers without their own
	// (default "berth").
	CgroupParent string `json:"cgroup-parent,omitempty"`
	// Bridge is the default bridge network's device ("none": no default
	// bridge); empty derives one from the data root (network package).
	Bridge string `json:"bridge,omitempty"`
	// BridgeIP is the default bridge's gateway address and subnet
	// (dockerd's --bip); empty picks a free subnet.
	BridgeIP string `json:"bip,omitempty"`
	// FirewallBackend is dockerd 28's --firewall-backend: "nftables",
	// "iptables", or empty for nftables where the kernel has it.
	FirewallBackend string `json:"firewall-backend,omitempty"`
	// NoSocketRedirect turns off the BPF fast path of published ports
	// for connections made on the host (network/sockredirect).
	NoSocketRedirect bool `json:"no-socket-redirect,omitempty"`
	// IPv6 gives the default bridge IPv6 (dockerd's --ipv6), on
	// FixedCIDRv6 or a /64 of the daemon's ULA pool.
	IPv6        bool   `json:"ipv6,omitempty"`
	FixedCIDRv6 string `json:"fixed-cidr-v6,omitempty"`
	// UsernsRemap is dockerd's --userns-remap: "default", "user[:group]"
	// or "uid[:gid]", whose subordinate ranges containers' ids map to.
	UsernsRemap string `json:"userns-remap,omitempty"`
	// Remap is UsernsRemap resolved at start (nil: no remapping).
	Remap *idmap.Remap `json:"-"`

	// ConfigFile is where the file options came from (not a file key).
	ConfigFile string `json:"-"`
}

// fileKeys maps daemon.json keys to the flags that set the same option
// (dockerd's "named options": the file says "hosts", the flag "host").
var fileKeys = map[string]string{
	"data-root":           "data-root",
	"exec-root":           "exec-root",
	"hosts":               "host",
	"log-level":           "log-level",
	"debug":               "debug",
	"insecure-registries": "insecure-registry",
	"registry-mirrors":    "registry-mirror",
	"pidfile":             "pidfile",
	"tlsverify":           "tlsverify",
	"tlscacert":           "tlscacert",
	"tlscert":             "tlscert",
	"tlskey":              "tlskey",
	"allow-plain-tcp":     "allow-plain-tcp",
	"experimental":        "experimental",
	"bridge":              "bridge",
	"bip":                 "bip",
	"firewall-backend":    "firewall-backend",
	"no-socket-redirect":  "no-socket-redirect",
	"ipv6":                "ipv6",
	"fixed-cidr-v6":       "fixed-cidr-v6",
	"max-build-context":   "max-build-context",
	"userns-remap":        "userns-remap",
}

// InstallFlags defines berthd's flags on fs, storing into cfg.
func InstallFlags(fs *pflag.FlagSet, cfg *Config) {
	fs.StringVar(&cfg.DataRoot, "data-root", DefaultDataRoot, "Root directory of persistent Berth state")
	fs.StringVar(&cfg.ExecRoot, "exec-root", DefaultExecRoot, "Root directory for execution state files")
	fs.StringSliceVarP(&cfg.Hosts, "host", "H", nil, "Daemon socket(s) to connect to (default "+DefaultHost+")")
	fs.StringVarP(&cfg.LogLevel, "log-level", "l", "info", `Set the logging level ("debug"|"info"|"warn"|"error"|"fatal")`)
	fs.BoolVarP(&cfg.Debug, "debug", "D", false, "Enable debug mode")
	fs.StringSliceVar(&cfg.InsecureRegistries, "insecure-registry", nil, "Enable insecure registry communication")
	fs.StringSliceVar(&cfg.RegistryMirrors, "registry-mirror", nil, "Preferred registry mirror")
	fs.StringVarP(&cfg.Pidfile, "pidfile", "p", "", "Path to use for daemon PID file (default <exec-root>/berthd.pid)")
	fs.BoolVar(&cfg.TLSVerify, "tlsverify", false, "Use TLS and verify the remote client (required for tcp:// hosts)")
	fs.StringVar(&cfg.TLSCACert, "tlscacert", "", "Trust certs signed only by this CA")
	fs.StringVar(&cfg.TLSCert, "tlscert", "", "Path to TLS certificate file")
	fs.StringVar(&cfg.TLSKey, "tlskey", "", "Path to TLS key file")
	fs.BoolVar(&cfg.AllowPlainTCP, "allow-plain-tcp", false, "Serve tcp:// hosts without TLS client verification (unsafe: root access for anyone reaching the port)")
	fs.BoolVar(&cfg.Experimental, "experimental", false, "Enable experimental features")
	fs.Int64Var(&cfg.MaxBuildContext, "max-build-context", 0, "Largest build context accepted, in bytes (default 2 GiB)")
	fs.StringVar(&cfg.CgroupParent, "cgroup-parent", "", "Set parent cgroup for all containers")
	fs.StringVarP(&cfg.Bridge, "bridge", "b", "", "Attach containers to a network bridge (default berth0, or a name derived from --data-root; \"none\" disables the default bridge network)")
	fs.StringVar(&cfg.BridgeIP, "bip", "", "Specify network bridge IP")
	fs.StringVar(&cfg.FirewallBackend, "firewall-backend", "", `Firewall backend ("nftables"|"iptables"; default nftables where the kernel has it)`)
	fs.BoolVar(&cfg.NoSocketRedirect, "no-socket-redirect", false, "Leave published ports to the NAT rules only, without the BPF redirect of the host's own connections")
	fs.BoolVar(&cfg.IPv6, "ipv6", false, "Enable IPv6 networking on the default bridge")
	fs.StringVar(&cfg.FixedCIDRv6, "fixed-cidr-v6", "", "IPv6 subnet of the default bridge (default: a /64 of the daemon's ULA pool)")
	fs.StringVar(&cfg.UsernsRemap, "userns-remap", "", "User/Group setting for user namespaces")
	fs.StringVar(&cfg.ConfigFile, "config-file", DefaultConfigFile, "Daemon configuration file")
}

// LoadConfigFile merges the JSON file cfg.ConfigFile into cfg, as dockerd
// does: a missing default file is no error, a key that is no option or an
// option given both as a flag and in the file is. fs is the parsed flag
// set InstallFlags defined.
func LoadConfigFile(cfg *Config, fs *pflag.FlagSet) error {
	path := cfg.ConfigFile
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !fs.Changed("config-file") {
			return nil
		}
		return fmt.Errorf("unable to configure the daemon with file %s: %w", path, err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	fail := func(err error) error {
		return fmt.Errorf("unable to configure the daemon with file %s: %w", path, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fail(err)
	}
	var unknown, conflicts []string
	for key := range raw {
		flag, ok := fileKeys[key]
		if !ok {
			unknown = append(unknown, key)
			continue
		}
		if f := fs.Lookup(flag); f != nil && f.Changed {
			conflicts = append(conflicts, fmt.Sprintf("%s: (from flag: %s, from file: %s)", key, flagString(f), string(raw[key])))
		}
	}
	sort.Strings(unknown)
	sort.Strings(conflicts)
	if len(unknown) > 0 {
		return fail(fmt.Errorf("the following directives don't match any configuration option: %s", strings.Join(unknown, ", ")))
	}
	if len(conflicts) > 0 {
		return fail(fmt.Errorf("the following directives are specified both as a flag and in the configuration file: %s", strings.Join(conflicts, ", ")))
	}
	// Decode onto a copy so that only the file's keys overwrite flags'
	// defaults, and a type error leaves cfg untouched.
	merged := *cfg
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&merged); err != nil {
		return fail(err)
	}
	merged.ConfigFile = cfg.ConfigFile
	*cfg = merged
	return nil
}

func flagString(f *pflag.Flag) string {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return "[" + strings.Join(sv.GetSlice(), " ") + "]"
	}
	return f.Value.String()
}

// normalize fills defaults that depend on other options and checks what
// can be checked without touching the system.
func (c *Config) normalize() error {
	if len(c.Hosts) == 0 {
		c.Hosts = []string{DefaultHost}
	}
	if err := c.normalizeReloadable(); err != nil {
		return err
	}
	var err error
	if c.DataRoot, err = filepath.Abs(c.DataRoot); err != nil {
		return err
	}
	if c.ExecRoot, err = filepath.Abs(c.ExecRoot); err != nil {
		return err
	}
	if c.Pidfile == "" {
		c.Pidfile = filepath.Join(c.ExecRoot, "berthd.pid")
	}
	if c.DataRoot == c.ExecRoot {
		return fmt.Errorf("data-root and exec-root must differ (both %s)", c.DataRoot)
	}
	for _, h := range c.Hosts {
		if _, err := parseHost(h); err != nil {
			return err
		}
	}
	return nil
}

// normalizeReloadable is normalize for the options a reload applies.
func (c *Config) normalizeReloadable() error {
	if c.Debug {
		c.LogLevel = "debug"
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	mirrors := make([]string, len(c.RegistryMirrors))
	for i, m := range c.RegistryMirrors {
		var err error
		if mirrors[i], err = validateMirror(m); err != nil {
			return err
		}
	}
	c.RegistryMirrors = mirrors
	return nil
}

// validateMirror checks a --registry-mirror as dockerd does (with its
// messages) and returns it as "scheme://host/".
func validateMirror(m string) (string, error) {
	u, err := url.Parse(m)
	if err != nil {
		return "", fmt.Errorf("invalid mirror: %q is not a valid URI", m)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("invalid mirror: unsupported scheme %q in %q", u.Scheme, u)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("invalid mirror: path, query, or fragment at end of the URI %q", u)
	}
	if u.User != nil {
		u.User = url.UserPassword(u.User.Username(), "xxxxx") // the message must not show the password
		return "", fmt.Errorf("invalid mirror: username/password not allowed in URI %q", u)
	}
	if u.Host == "" {
		return "", fmt.Errorf("invalid mirror: no host in %q", m)
	}
	return strings.TrimSuffix(m, "/") + "/", nil
}
