package service

import (
	"context"
	"slices"
	"strings"

	"github.com/berth-dev/berth/image/credentials"
)

// Login is `docker login`: it checks user and pass against the registry
// host ("" for Docker Hub) and stores them in the config file.
func (s *Service) Login(ctx context.Context, host, user, pass string) error {
	if host == "" {
		host = credentials.DockerHubKey
	}
	var opts []credentials.LoginOption
	if s.insecure(host) {
		opts = append(opts, credentials.WithInsecure())
	}
	if err := s.creds.Login(ctx, host, user, pass, opts...); err != nil {
		return err
	}
	s.resetClient()
	return nil
}

// Logout is `docker logout`: it removes host's credentials ("" for Docker
// Hub). Not being logged in is an error wrapping errdefs.ErrNotFound.
func (s *Service) Logout(ctx context.Context, host string) error {
	if host == "" {
		host = credentials.DockerHubKey
	}
	if err := s.creds.Logout(ctx, host); err != nil {
		return err
	}
	s.resetClient()
	return nil
}

// insecure reports whether host is one of Options.Insecure (with or without
// its port).
func (s *Service) insecure(host string) bool {
	key := credentials.ServerKey(host)
	name, _, _ := strings.Cut(key, ":")
	s.regMu.Lock()
	defer s.regMu.Unlock()
	return slices.Contains(s.opts.Insecure, key) || slices.Contains(s.opts.Insecure, name)
}
