package daemon

import (
	"encoding/json"
	"log/slog"
	"os"

	eventtypes "github.com/moby/moby/api/types/events"
)

// config returns the daemon's configuration as it is now.
func (d *Daemon) config() Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// reload is dockerd's SIGHUP: it reads the configuration again and
// applies what can change while berthd runs (debug and log-level,
// insecure-registries, registry-mirrors), then sends a daemon reload
// event with the options' new values. A configuration that cannot be read
// or is invalid is logged and changes nothing; other options keep their
// values until a restart.
func (d *Daemon) reload(opts Options) {
	d.log.Info("got signal to reload configuration", "file", d.cfg.ConfigFile)
	next, err := opts.ReloadConfig()
	if err == nil {
		err = next.normalizeReloadable()
	}
	var level slog.Level
	if err == nil {
		level, err = LogLevel(next)
	}
	if err != nil {
		d.log.Error("reload configuration", "err", err)
		return
	}
	d.mu.Lock()
	d.cfg.Debug, d.cfg.LogLevel = next.Debug, next.LogLevel
	d.cfg.InsecureRegistries, d.cfg.RegistryMirrors = next.InsecureRegistries, next.RegistryMirrors
	d.mu.Unlock()
	if opts.Level != nil {
		opts.Level.Set(level)
	}
	d.images.SetRegistries(next.InsecureRegistries, next.RegistryMirrors)
	host, _ := os.Hostname()
	attrs := map[string]string{
		"debug":               formatBool(next.Debug),
		"insecure-registries": jsonList(next.InsecureRegistries),
		"registry-mirrors":    jsonList(next.RegistryMirrors),
		"name":                host,
	}
	d.bus.Publish(eventtypes.DaemonEventType, eventtypes.ActionReload, eventtypes.Actor{ID: d.id, Attributes: attrs})
	d.log.Info("reloaded configuration", "debug", next.Debug, "log-level", next.LogLevel,
		"insecure-registries", next.InsecureRegistries, "registry-mirrors", next.RegistryMirrors)
}

func formatBool(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// jsonList is how dockerd's reload event shows a list: JSON, [] for none.
func jsonList(l []string) string {
	if l == nil {
		l = []string{}
	}
	b, _ := json.Marshal(l)
	return string(b)
}
