package credentials

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"

	"github.com/berth-dev/berth/errdefs"
)

// helperPrefix starts the name of every credential helper program.
const helperPrefix = "docker-credential-"

// tokenUsername is the username a helper stores with an identity token
// as its secret.
const tokenUsername = "<token>"

// notFoundMessage is what helpers print when they have no credentials.
const notFoundMessage = "credentials not found in native keychain"

// helperCreds is the JSON a helper reads on store and writes on get.
type helperCreds struct {
	ServerURL string `json:"ServerURL"`
	Username  string `json:"Username"`
	Secret    string `json:"Secret"`
}

// helper runs docker-credential-<name>.
type helper struct {
	name string
	// lookPath finds the program (exec.LookPath unless a test says otherwise).
	lookPath func(string) (string, error)
}

// run runs the helper's action with input on stdin and returns its stdout.
// A "not found" answer wraps errdefs.ErrNotFound.
func (h helper) run(ctx context.Context, action string, input []byte) ([]byte, error) {
	prog := helperPrefix + h.name
	path, err := h.lookPath(prog)
	if err != nil {
		return nil, fmt.Errorf("credential helper %s: %w: %w", prog, err, errdefs.ErrUnavailable)
	}
	cmd := exec.CommandContext(ctx, path, action)
	cmd.Stdin = bytes.NewReader(input)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stdout.String())
		if msg == "" {
			msg = strings.TrimSpace(stderr.String())
		}
		if msg == notFoundMessage {
			return nil, fmt.Errorf("%s %s: %s: %w", prog, action, msg, errdefs.ErrNotFound)
		}
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("%s %s: %s: %w", prog, action, msg, errdefs.ErrUnavailable)
	}
	return stdout.Bytes(), nil
}

func (h helper) get(ctx context.Context, server string) (Auth, error) {
	out, err := h.run(ctx, "get", []byte(server))
	if err != nil {
		return Auth{}, err
	}
	var c helperCreds
	if err := json.Unmarshal(out, &c); err != nil {
		return Auth{}, fmt.Errorf("%s%s get: bad answer: %v: %w", helperPrefix, h.name, err, errdefs.ErrUnavailable)
	}
	if c.Username == tokenUsername {
		return Auth{IdentityToken: c.Secret}, nil
	}
	return Auth{Username: c.Username, Password: c.Secret}, nil
}

func (h helper) store(ctx context.Context, server string, a Auth) error {
	c := helperCreds{ServerURL: server, Username: a.Username, Secret: a.Password}
	if a.IdentityToken != "" {
		c.Username, c.Secret = tokenUsername, a.IdentityToken
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = h.run(ctx, "store", b)
	return err
}

func (h helper) erase(ctx context.Context, server string) error {
	_, err := h.run(ctx, "erase", []byte(server))
	return err
}
