package credentials

import (
	"context"
	"fmt"
	"os/exec"

	"github.com/berth-dev/berth/errdefs"
)

// Store is the credentials kept in one Docker config file and the
// credential helpers it names. It holds no state of its own: each call
// reads the file again. Concurrent writers in one process are not
// serialised beyond the file's atomic replacement.
type Store struct {
	path     string
	lookPath func(string) (string, error)
}

// StoreOption configures NewStore.
type StoreOption func(*Store)

// WithHelperDir makes the store look for docker-credential-* programs in
// dir only, instead of on $PATH.
func WithHelperDir(dir string) StoreOption {
	return func(s *Store) {
		s.lookPath = func(name string) (string, error) { return exec.LookPath(dir + "/" + name) }
	}
}

// NewStore returns the store for the config file at path ("" for
// DefaultPath()). The file need not exist yet.
func NewStore(path string, opts ...StoreOption) *Store {
	if path == "" {
		path = DefaultPath()
	}
	s := &Store{path: path, lookPath: exec.LookPath}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Path is the config file.
func (s *Store) Path() string { return s.path }

// helperFor returns the helper that holds key's credentials, if any: the
// registry's credHelpers entry, else credsStore.
func (s *Store) helperFor(cf *configFile, key string) (helper, bool) {
	name := cf.CredHelpers[key]
	if name == "" {
		name = cf.CredsStore
	}
	return helper{name: name, lookPath: s.lookPath}, name != ""
}

// Get returns host's credentials, or a zero Auth (and no error) when there
// are none. host is a registry host, or any key form ServerKey accepts.
func (s *Store) Get(ctx context.Context, host string) (Auth, error) {
	cf, err := load(s.path)
	if err != nil {
		return Auth{}, err
	}
	key := ServerKey(host)
	var a Auth
	if k, ok := cf.findAuth(key); ok {
		if a, err = cf.Auths[k].decode(); err != nil {
			return Auth{}, fmt.Errorf("docker config %s: auths[%q]: %v: %w", s.path, k, err, errdefs.ErrInvalidArgument)
		}
	}
	if h, ok := s.helperFor(cf, key); ok {
		ha, err := h.get(ctx, key)
		if errdefs.IsNotFound(err) {
			return a, nil
		}
		if err != nil {
			return Auth{}, err
		}
		return ha, nil
	}
	return a, nil
}

// Put stores a as host's credentials: in the registry's helper when the
// config names one (the file then keeps an empty entry for the host, as
// Docker's does), in the file's "auths" otherwise.
func (s *Store) Put(ctx context.Context, host string, a Auth) error {
	cf, err := load(s.path)
	if err != nil {
		return err
	}
	key := ServerKey(host)
	if k, ok := cf.findAuth(key); ok && k != key {
		delete(cf.Auths, k)
	}
	if h, ok := s.helperFor(cf, key); ok {
		if err := h.store(ctx, key, a); err != nil {
			return err
		}
		if _, ok := cf.CredHelpers[key]; ok {
			return nil // a per-registry helper leaves the file alone
		}
		cf.Auths[key] = fileAuth{}
	} else {
		cf.Auths[key] = encode(a)
	}
	return cf.save(s.path)
}

// Erase removes host's credentials from the file and from its helper. It
// returns an error wrapping errdefs.ErrNotFound, in Docker's words ("Not
// logged in to <host>"), when neither holds any.
func (s *Store) Erase(ctx context.Context, host string) error {
	cf, err := load(s.path)
	if err != nil {
		return err
	}
	key := ServerKey(host)
	found := false
	if h, ok := s.helperFor(cf, key); ok {
		if _, err := h.get(ctx, key); err == nil {
			if err := h.erase(ctx, key); err != nil && !errdefs.IsNotFound(err) {
				return err
			}
			found = true
		} else if !errdefs.IsNotFound(err) {
			return err
		}
	}
	if k, ok := cf.findAuth(key); ok {
		delete(cf.Auths, k)
		found = true
		if err := cf.save(s.path); err != nil {
			return err
		}
	}
	if !found {
		return fmt.Errorf("Not logged in to %s: %w", displayHost(key), errdefs.ErrNotFound)
	}
	return nil
}

// displayHost is how Docker's messages name a registry.
func displayHost(key string) string {
	if key == DockerHubKey {
		return "docker.io"
	}
	return key
}
