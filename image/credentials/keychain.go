package credentials

import (
	"context"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Keychain returns a go-containerregistry keychain backed by s: a
// registry with credentials gets them, any other is anonymous. Errors
// reading the file or running a helper are returned as they are.
func (s *Store) Keychain() authn.Keychain { return keychain{s} }

type keychain struct{ s *Store }

// Resolve implements authn.Keychain.
func (k keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), r)
}

// ResolveContext implements authn.ContextKeychain.
func (k keychain) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	a, err := k.s.Get(ctx, r.RegistryStr())
	if err != nil {
		return nil, err
	}
	if a.IsZero() {
		return authn.Anonymous, nil
	}
	return Authenticator(a), nil
}

// Authenticator returns a as a go-containerregistry Authenticator.
func Authenticator(a Auth) authn.Authenticator {
	return authn.FromConfig(authn.AuthConfig{
		Username:      a.Username,
		Password:      a.Password,
		IdentityToken: a.IdentityToken,
		RegistryToken: a.RegistryToken,
	})
}
