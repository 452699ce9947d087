package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/internal/idmap"
)

// noIDMapEnv, when set in berthd's environment, makes a remapped daemon
// show layers through chown'd copies even where idmapped mounts work, so
// that tests cover the fallback.
const noIDMapEnv = "BERTHD_USERNS_NO_IDMAP"

// setupRemap resolves --userns-remap into cfg.Remap and makes the data
// and exec roots traversable by the remapped root, as dockerd does: every
// parent must already allow it (o+x), the roots themselves are opened
// (0711).
func setupRemap(cfg *Config) error {
	if cfg.UsernsRemap == "" {
		return nil
	}
	r, err := idmap.Resolve(cfg.UsernsRemap, idmap.HostFiles)
	if err != nil {
		return err
	}
	for _, root := range []string{cfg.DataRoot, cfg.ExecRoot} {
		for dir := filepath.Dir(root); ; dir = filepath.Dir(dir) {
			st, err := os.Stat(dir)
			if err != nil {
				return err
			}
			if st.Mode().Perm()&0o001 == 0 {
				return fmt.Errorf("a directory in the path of %s (%s) restricts access to the remapped root uid/gid; please fix by allowing 'o+x' permissions on existing directories", root, dir)
			}
			if dir == "/" {
				break
			}
		}
		if err := os.MkdirAll(root, 0o711); err != nil {
			return err
		}
		if err := os.Chmod(root, 0o711); err != nil {
			return err
		}
	}
	cfg.Remap = &r
	return nil
}

// remapLayers is how the container side shows layers under the remap
// (nil without one).
func remapLayers(cfg Config, log *slog.Logger) *idmap.Layers {
	if cfg.Remap == nil {
		return nil
	}
	l := &idmap.Layers{
		Mapping:  cfg.Remap.Mapping,
		CacheDir: filepath.Join(cfg.DataRoot, "userns", cfg.Remap.Mapping.Key()),
		NoIDMap:  os.Getenv(noIDMapEnv) != "",
	}
	// The copies of layers removed since the last start go; layers are
	// the overlay snapshotter's <images>/snapshots/snapshots/<id>/fs.
	if err := l.Prune(filepath.Join(cfg.DataRoot, "images", "snapshots", "snapshots")); err != nil {
		log.Warn("prune the chown'd layer copies", "dir", l.CacheDir, "err", err)
	}
	return l
}
