package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	clitypes "github.com/docker/cli/cli/config/types"
	"github.com/moby/moby/client"
	"github.com/moby/term"
	"github.com/spf13/cobra"
)

func (c *Cli) newLoginCmd() *cobra.Command {
	var user, password string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login [OPTIONS] [SERVER]",
		Short: "Log in to a Docker registry",
		Args:  requiresRangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := indexServer
			if len(args) == 1 {
				server = args[0]
			}
			if password != "" {
				fmt.Fprintln(c.Err, "WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
				if passwordStdin {
					return errors.New("--password and --password-stdin are mutually exclusive")
				}
			}
			if passwordStdin {
				if user == "" {
					return errors.New("Must provide --username with --password-stdin")
				}
				b, err := io.ReadAll(c.In)
				if err != nil {
					return err
				}
				password = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
			}
			rd := bufio.NewReader(c.In)
			if user == "" {
				fmt.Fprint(c.Out, "Username: ")
				line, _ := rd.ReadString('\n')
				user = strings.TrimSpace(line)
				if user == "" {
					return errors.New("Error: Non-null Username Required")
				}
			}
			if password == "" {
				if f, ok := c.In.(interface{ Fd() uintptr }); ok && term.IsTerminal(f.Fd()) {
					state, err := term.SaveState(f.Fd())
					if err == nil {
						term.DisableEcho(f.Fd(), state)
						defer term.RestoreTerminal(f.Fd(), state)
					}
				}
				fmt.Fprint(c.Out, "Password: ")
				line, _ := rd.ReadString('\n')
				fmt.Fprintln(c.Out)
				password = strings.TrimRight(line, "\r\n")
				if password == "" {
					return errors.New("Error: Password Required")
				}
			}
			api, err := c.Client()
			if err != nil {
				return err
			}
			res, err := api.RegistryLogin(context.Background(), client.RegistryLoginOptions{Username: user,
				Password: password, ServerAddress: server})
			if err != nil {
				return err
			}
			stored := clitypes.AuthConfig{Username: user, Password: password, ServerAddress: server}
			if res.Auth.IdentityToken != "" {
				stored.Password, stored.IdentityToken = "", res.Auth.IdentityToken
			}
			cfg := c.ConfigFile()
			if err := cfg.GetCredentialsStore(server).Store(stored); err != nil {
				return fmt.Errorf("Error saving credentials: %w", err)
			}
			if res.Auth.Status != "" {
				fmt.Fprintln(c.Out, res.Auth.Status)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&user, "username", "u", "", "Username")
	cmd.Flags().StringVarP(&password, "password", "p", "", "Password")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "Take the password from stdin")
	return cmd
}

func (c *Cli) newLogoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Log out from a Docker registry",
		Args:  requiresRangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := indexServer
			if len(args) == 1 {
				server = args[0]
			}
			cfg := c.ConfigFile()
			if _, ok := cfg.AuthConfigs[server]; !ok && cfg.CredentialsStore == "" && len(cfg.CredentialHelpers) == 0 {
				fmt.Fprintf(c.Out, "Not logged in to %s\n", server)
				return nil
			}
			fmt.Fprintf(c.Out, "Removing login credentials for %s\n", server)
			if err := cfg.GetCredentialsStore(server).Erase(server); err != nil {
				fmt.Fprintf(c.Err, "WARNING: could not erase credentials: %s: %v\n", server, err)
			}
			return nil
		},
	}
}
