package registry

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/docker/cli/cli/config/configfile"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// DockerHubAuthKey is the key Docker's config.json uses for Docker Hub.
const DockerHubAuthKey = "https://index.docker.io/v1/"

// ConfigKeychain returns a keychain that reads credentials from the Docker
// config file at path, as the docker CLI does: "auths" entries (auth,
// username/password, identitytoken), then "credHelpers" per registry and
// the "credsStore" default, run as docker-credential-<name> programs.
// The file is read at every Resolve, so a login is seen at once. A missing
// file means anonymous access. With path "", go-containerregistry's
// DefaultKeychain is used ($HOME/.docker/config.json, $DOCKER_CONFIG,
// podman's auth.json).
func ConfigKeychain(path string) authn.Keychain {
	if path == "" {
		return authn.DefaultKeychain
	}
	return configKeychain{path: path}
}

type configKeychain struct{ path string }

func (k configKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), target)
}

func (k configKeychain) ResolveContext(_ context.Context, target authn.Resource) (authn.Authenticator, error) {
	f, err := os.Open(k.path)
	if errors.Is(err, fs.ErrNotExist) {
		return authn.Anonymous, nil
	}
	if err != nil {
		return nil, fmt.Errorf("docker config: %w", err)
	}
	defer f.Close()
	cf := configfile.New(k.path)
	if err := cf.LoadFromReader(f); err != nil {
		return nil, fmt.Errorf("docker config %s: %w", k.path, err)
	}
	for _, key := range []string{target.String(), target.RegistryStr()} {
		if key == name.DefaultRegistry || key == "docker.io" {
			key = DockerHubAuthKey
		}
		cfg, err := cf.GetAuthConfig(key)
		if err != nil {
			return nil, fmt.Errorf("docker config %s: credentials for %s: %w", k.path, key, err)
		}
		if cfg.Username == "" && cfg.Password == "" && cfg.Auth == "" && cfg.IdentityToken == "" && cfg.RegistryToken == "" {
			continue
		}
		return authn.FromConfig(authn.AuthConfig{
			Username:      cfg.Username,
			Password:      cfg.Password,
			Auth:          cfg.Auth,
			IdentityToken: cfg.IdentityToken,
			RegistryToken: cfg.RegistryToken,
		}), nil
	}
	return authn.Anonymous, nil
}
