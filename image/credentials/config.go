// Package credentials owns registry credentials as Docker keeps them: the
// client config file (~/.docker/config.json, or $DOCKER_CONFIG/config.json)
// with its "auths" entries, and the credential helpers it names
// ("credsStore" for all registries, "credHelpers" per registry), which are
// programs docker-credential-<name> speaking Docker's get/store/erase
// protocol over stdin and stdout.
//
// A Store reads the file afresh for every operation (docker itself may
// change it in between) and writes it crash-safely (temp file, fsync,
// rename; mode 0600), keeping every key it does not own. Login checks
// credentials against the registry before storing them, Logout removes
// them, and Keychain hands them to go-containerregistry's transports.
//
// Registries are named by host ("127.0.0.1:5000", "ghcr.io"); Docker Hub,
// however it is spelled ("docker.io", "index.docker.io",
// "registry-1.docker.io"), is stored under Docker's legacy key
// "https://index.docker.io/v1/".
package credentials

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/atomicfile"
)

// DockerHubKey is the key Docker stores Docker Hub's credentials under.
const DockerHubKey = "https://index.docker.io/v1/"

// ConfigFileName is the name of the config file in its directory.
const ConfigFileName = "config.json"

// Auth is one registry's credentials.
type Auth struct {
	Username string
	Password string
	// IdentityToken is an OAuth2 refresh token some registries hand out at
	// login, used instead of the password.
	IdentityToken string
	// RegistryToken is a bearer token sent to the registry as is.
	RegistryToken string
}

// IsZero reports whether a holds no credentials.
func (a Auth) IsZero() bool { return a == Auth{} }

// DefaultPath is Docker's config file: $DOCKER_CONFIG/config.json when
// DOCKER_CONFIG is set, else ~/.docker/config.json.
func DefaultPath() string {
	if dir := os.Getenv("DOCKER_CONFIG"); dir != "" {
		return filepath.Join(dir, ConfigFileName)
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		home = "/root"
	}
	return filepath.Join(home, ".docker", ConfigFileName)
}

// ServerKey is the key a registry's credentials are stored under: Docker
// Hub's legacy URL for Docker Hub, the bare host[:port] otherwise (a scheme
// and path given with it, as in "https://host:5000/v1/", are dropped).
func ServerKey(host string) string {
	h := hostname(host)
	switch h {
	case "", "docker.io", "index.docker.io", "registry-1.docker.io":
		return DockerHubKey
	}
	return h
}

// hostname strips a scheme and a path from a registry address, as Docker's
// ConvertToHostname does for keys found in the file.
func hostname(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "http://"), "https://")
	h, _, _ := strings.Cut(s, "/")
	return h
}

// fileAuth is one "auths" entry as Docker writes it.
type fileAuth struct {
	Auth          string `json:"auth,omitempty"`
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	Email         string `json:"email,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

func (fa fileAuth) decode() (Auth, error) {
	a := Auth{Username: fa.Username, Password: fa.Password, IdentityToken: fa.IdentityToken, RegistryToken: fa.RegistryToken}
	if fa.Auth != "" {
		b, err := base64.StdEncoding.DecodeString(fa.Auth)
		if err != nil {
			return Auth{}, fmt.Errorf("auth field is not base64: %v", err)
		}
		user, pass, ok := strings.Cut(string(b), ":")
		if !ok {
			return Auth{}, errors.New("auth field is not user:password")
		}
		a.Username, a.Password = user, pass
	}
	return a, nil
}

func encode(a Auth) fileAuth {
	fa := fileAuth{IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
	if a.Username != "" || a.Password != "" {
		fa.Auth = base64.StdEncoding.EncodeToString([]byte(a.Username + ":" + a.Password))
	}
	return fa
}

// configFile is the parsed config file: the keys this package owns, and
// everything else kept raw so that writing it back loses nothing.
type configFile struct {
	raw         map[string]json.RawMessage
	Auths       map[string]fileAuth
	CredsStore  string
	CredHelpers map[string]string
}

// load reads the config at path; a missing file is an empty config.
func load(path string) (*configFile, error) {
	cf := &configFile{raw: map[string]json.RawMessage{}, Auths: map[string]fileAuth{}, CredHelpers: map[string]string{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cf, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read docker config %s: %w", path, err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return cf, nil
	}
	if err := json.Unmarshal(b, &cf.raw); err != nil {
		return nil, fmt.Errorf("docker config %s: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	for key, dst := range map[string]any{"auths": &cf.Auths, "credsStore": &cf.CredsStore, "credHelpers": &cf.CredHelpers} {
		if v, ok := cf.raw[key]; ok {
			if err := json.Unmarshal(v, dst); err != nil {
				return nil, fmt.Errorf("docker config %s: %q: %v: %w", path, key, err, errdefs.ErrInvalidArgument)
			}
		}
	}
	if cf.Auths == nil {
		cf.Auths = map[string]fileAuth{}
	}
	return cf, nil
}

// findAuth returns the auths key for host: an exact match first, then a
// key that names the same host with a scheme or path.
func (cf *configFile) findAuth(key string) (string, bool) {
	if _, ok := cf.Auths[key]; ok {
		return key, true
	}
	for k := range cf.Auths {
		if ServerKey(k) == key {
			return k, true
		}
	}
	return "", false
}

// save writes cf to path crash-safely: a temp file in the same directory
// (mode 0600), fsync, rename over path, fsync of the directory.
func (cf *configFile) save(path string) error {
	raw := make(map[string]json.RawMessage, len(cf.raw)+1)
	for k, v := range cf.raw {
		raw[k] = v
	}
	b, err := json.Marshal(cf.Auths)
	if err != nil {
		return err
	}
	raw["auths"] = b
	b, err = json.MarshalIndent(raw, "", "\t")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write docker config: %w", err)
	}
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write docker config: %w", err)
	}
	return nil
}
