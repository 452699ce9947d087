package cli

import (
	"context"
	"errors"

	"github.com/docker/cli/opts"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cli/stream"
)

func (c *Cli) newExecCmd() *cobra.Command {
	var interactive, tty, detach, privileged bool
	var user, workdir, detachKeys string
	env := opts.NewListOpts(opts.ValidateEnv)
	envFile := opts.NewListOpts(nil)
	cmd := &cobra.Command{
		Use:   "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Short: "Run a command in a running container",
		Args:  requiresMinArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			envs, err := opts.ReadKVEnvStrings(envFile.GetSlice(), env.GetSlice())
			if err != nil {
				return err
			}
			if detachKeys == "" {
				detachKeys = c.ConfigFile().DetachKeys
			}
			o := client.ExecCreateOptions{User: user, Privileged: privileged, TTY: tty, AttachStdin: interactive && !detach,
				AttachStdout: !detach, AttachStderr: !detach, DetachKeys: detachKeys, Env: envs, WorkingDir: workdir, Cmd: args[1:]}
			if tty {
				h, w := c.OutSize()
				o.ConsoleSize = client.ConsoleSize{Height: h, Width: w}
			}
			if _, err := api.ContainerInspect(ctx, args[0], client.ContainerInspectOptions{}); err != nil {
				return err
			}
			created, err := api.ExecCreate(ctx, args[0], o)
			if err != nil {
				return err
			}
			if detach {
				_, err := api.ExecStart(ctx, created.ID, client.ExecStartOptions{Detach: true, TTY: tty, ConsoleSize: o.ConsoleSize})
				return err
			}
			if o.AttachStdin && tty && !c.InIsTerminal() {
				return errors.New("the input device is not a TTY")
			}
			resp, err := api.ExecAttach(ctx, created.ID, client.ExecAttachOptions{TTY: tty, ConsoleSize: o.ConsoleSize})
			if err != nil {
				return err
			}
			errCh := make(chan error, 1)
			go func() {
				errCh <- stream.Pump(ctx, resp.HijackedResponse, c.Streams, stream.Options{TTY: tty,
					Stdin: o.AttachStdin, Stdout: true, Stderr: true, DetachKeys: detachKeys})
			}()
			if tty && c.OutIsTerminal() {
				stream.MonitorSize(ctx, c.Streams, func(ctx context.Context, h, w uint) error {
					_, err := api.ExecResize(ctx, created.ID, client.ExecResizeOptions{Height: h, Width: w})
					return err
				})
			}
			if err := <-errCh; err != nil {
				if errors.Is(err, stream.ErrDetached) {
					return nil
				}
				return err
			}
			res, err := api.ExecInspect(ctx, created.ID, client.ExecInspectOptions{})
			if err != nil {
				return err
			}
			if res.ExitCode != 0 {
				return StatusError{Code: res.ExitCode}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.BoolVarP(&interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	fl.BoolVarP(&tty, "tty", "t", false, "Allocate a pseudo-TTY")
	fl.BoolVarP(&detach, "detach", "d", false, "Detached mode: run command in the background")
	fl.BoolVar(&privileged, "privileged", false, "Give extended privileges to the command")
	fl.StringVarP(&user, "user", "u", "", "Username or UID (format: <name|uid>[:<group|gid>])")
	fl.StringVarP(&workdir, "workdir", "w", "", "Working directory inside the container")
	fl.StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	fl.VarP(&env, "env", "e", "Set environment variables")
	fl.Var(&envFile, "env-file", "Read in a file of environment variables")
	return cmd
}
