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
	if a, ok := FromContext(ctx); ok {
		return Authenticator(a), nil
	}
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

type authKey struct{}

// WithAuth returns ctx carrying a, which a Store's keychain then answers
// instead of the stored credentials: the credentials a client sent with
// its request (Docker's X-Registry-Auth), for the registry the request
// is about. Zero credentials leave ctx as it is (the client has none).
func WithAuth(ctx context.Context, a Auth) context.Context {
	if a.IsZero() {
		return ctx
	}
	return context.WithValue(ctx, authKey{}, a)
}

// FromContext returns the credentials WithAuth put in ctx.
func FromContext(ctx context.Context) (Auth, bool) {
	a, ok := ctx.Value(authKey{}).(Auth)
	return a, ok
}
