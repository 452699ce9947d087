package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berth-dev/berth/cli/runopts"
	"github.com/berth-dev/berth/cli/stream"
)

func (c *Cli) newRunCmd() *cobra.Command {
	var ro *runopts.Options
	var detach, sigProxy bool
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Run a command in a new container",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.run(cmd.Flags(), ro, args, detach, sigProxy, detachKeys)
		},
	}
	ro = runopts.AddFlags(cmd.Flags())
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "Run container in background and print container ID")
	cmd.Flags().BoolVar(&sigProxy, "sig-proxy", true, "Proxy received signals to the process")
	cmd.Flags().StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	return cmd
}

func (c *Cli) newCreateCmd() *cobra.Command {
	var ro *runopts.Options
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create a new container",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := ro.Parse(cmd.Flags(), args)
			if err != nil {
				return c.optionError("create", err)
			}
			id, err := c.createContainer(context.Background(), cfg, ro)
			if err != nil {
				// Unlike run, docker create reports daemon errors plainly.
				return err
			}
			fmt.Fprintln(c.Out, id)
			return nil
		},
	}
	ro = runopts.AddFlags(cmd.Flags())
	return cmd
}

// optionError reports a bad run/create option as docker does: exit 125,
// whatever the message says (an --env-file that does not exist is no
// missing command).
func (c *Cli) optionError(verb string, err error) error {
	return StatusError{Status: "berth: " + strings.TrimSuffix(err.Error(), ".") + ".\nSee 'berth " + verb + " --help'.", Code: 125}
}

// runError reports an error of run/create as Docker does ("berth: <err>."
// and a usage hint) and maps it to the exit code: 126 when the command
// cannot be invoked, 127 when it is missing, 125 otherwise.
func (c *Cli) runError(verb string, err error, withHelp bool) error {
	err = c.daemonError(err)
	msg := strings.TrimSuffix(err.Error(), ".") + "."
	if withHelp {
		msg += "\nSee 'berth " + verb + " --help'."
	}
	trimmed := strings.TrimPrefix(err.Error(), "Error response from daemon: ")
	code := 125
	switch {
	case strings.Contains(trimmed, "executable file not found"), strings.Contains(trimmed, "no such file or directory"):
		code = 127
	case strings.Contains(trimmed, syscall.EACCES.Error()):
		code = 126
	}
	return StatusError{Status: "berth: " + msg, Code: code}
}

// createContainer creates the container, pulling its image first when
// --pull says so or when it is missing.
func (c *Cli) createContainer(ctx context.Context, cfg *runopts.Config, ro *runopts.Options) (string, error) {
	if !ro.DisableContentTrust {
		return "", runopts.ErrContentTrust
	}
	api, err := c.Client()
	if err != nil {
		return "", err
	}
	var platform *ocispec.Platform
	if ro.Platform != "" {
		p, err := parsePlatform(ro.Platform)
		if err != nil {
			return "", err
		}
		platform = &p
	}
	switch ro.Pull {
	case "missing", "always", "never":
	default:
		return "", fmt.Errorf("invalid pull option: '%s': must be one of \"always\", \"missing\" or \"never\"", ro.Pull)
	}
	var named reference.Named
	if ref, err := reference.ParseAnyReference(cfg.Config.Image); err == nil {
		if n, ok := ref.(reference.Named); ok {
			named = reference.TagNameOnly(n)
		}
	}
	pull := func() error {
		var out io.Writer = c.Err
		if ro.Quiet {
			out = io.Discard
		}
		return c.pullImage(ctx, cfg.Config.Image, ro.Platform, false, false, out)
	}
	if ro.Pull == "always" {
		if err := pull(); err != nil {
			return "", err
		}
	}
	if ro.CIDFile != "" {
		if _, err := os.Stat(ro.CIDFile); err == nil {
			return "", fmt.Errorf("container ID file found, make sure the other container isn't running or delete %s", ro.CIDFile)
		}
	}
	if ro.TTY {
		h, w := c.OutSize()
		cfg.HostConfig.ConsoleSize = [2]uint{h, w}
	}
	opts := client.ContainerCreateOptions{Config: cfg.Config, HostConfig: cfg.HostConfig,
		NetworkingConfig: cfg.Network, Platform: platform, Name: ro.Name}
	resp, err := api.ContainerCreate(ctx, opts)
	if err != nil && isNotFound(err) && named != nil && ro.Pull == "missing" {
		if !ro.Quiet {
			fmt.Fprintf(c.Err, "Unable to find image '%s' locally\n", reference.FamiliarString(named))
		}
		if err := pull(); err != nil {
			return "", err
		}
		resp, err = api.ContainerCreate(ctx, opts)
	}
	if err != nil {
		return "", err
	}
	for _, w := range resp.Warnings {
		fmt.Fprintf(c.Err, "WARNING: %s\n", w)
	}
	if ro.CIDFile != "" {
		if err := os.WriteFile(ro.CIDFile, []byte(resp.ID), 0o644); err != nil {
			return "", fmt.Errorf("failed to write the container ID to the file: %w", err)
		}
	}
	return resp.ID, nil
}

func (c *Cli) run(fs *pflag.FlagSet, ro *runopts.Options, args []string, detach, sigProxy bool, detachKeys string) error {
	cfg, err := ro.Parse(fs, args)
	if err != nil {
		return c.optionError("run", err)
	}
	config := cfg.Config
	if detach {
		if fs.Changed("attach") {
			return StatusError{Status: "Conflicting options: -a and -d", Code: 1} // docker's words and code
		}
		config.AttachStdin, config.AttachStdout, config.AttachStderr, config.StdinOnce = false, false, false, false
	} else {
		if config.AttachStdin && config.Tty && !c.InIsTerminal() {
			return StatusError{Status: "the input device is not a TTY", Code: 1} // docker's words and code
		}
		if config.OpenStdin && config.AttachStdin {
			config.StdinOnce = true
		}
	}
	if detachKeys == "" {
		detachKeys = c.ConfigFile().DetachKeys
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	id, err := c.createContainer(ctx, cfg, ro)
	if err != nil {
		return c.runError("run", err, true)
	}
	api, _ := c.Client()
	if sigProxy && !config.Tty && !detach {
		stream.ForwardSignals(ctx, func(sig string) {
			api.ContainerKill(context.Background(), id, client.ContainerKillOptions{Signal: sig})
		})
	}
	attach := config.AttachStdin || config.AttachStdout || config.AttachStderr
	var errCh chan error
	if attach {
		resp, err := api.ContainerAttach(ctx, id, client.ContainerAttachOptions{Stream: true,
			Stdin: config.AttachStdin, Stdout: config.AttachStdout, Stderr: config.AttachStderr, DetachKeys: detachKeys})
		if err != nil {
			return c.runError("run", err, false)
		}
		errCh = make(chan error, 1)
		go func() {
			errCh <- stream.Pump(ctx, resp.HijackedResponse, c.Streams, stream.Options{TTY: config.Tty,
				Stdin: config.AttachStdin, Stdout: config.AttachStdout, Stderr: config.AttachStderr, DetachKeys: detachKeys})
		}()
	}
	// Wait before start: a fast container must not exit unseen. The wait
	// outlives cancel (which ends the attach when start fails): with --rm
	// it still has to see the removal. Without stdout or stderr attached
	// (-d) the exit code is never reported, so there is nothing to wait
	// for (and a wait cancelled at return would print its error).
	var status <-chan int
	if config.AttachStdout || config.AttachStderr {
		waitCtx, cancelWait := context.WithCancel(context.Background())
		defer cancelWait()
		status = c.waitExitOrRemoved(waitCtx, id, cfg.HostConfig.AutoRemove)
	}
	if _, err := api.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		if attach {
			cancel()
			<-errCh
		}
		if status != nil && cfg.HostConfig.AutoRemove {
			<-status
		}
		return c.runError("run", err, false)
	}
	if attach && config.Tty && c.OutIsTerminal() {
		stream.MonitorSize(ctx, c.Streams, func(ctx context.Context, h, w uint) error {
			_, err := api.ContainerResize(ctx, id, client.ContainerResizeOptions{Height: h, Width: w})
			return err
		})
	}
	if errCh != nil {
		if err := <-errCh; err != nil {
			if errors.Is(err, stream.ErrDetached) {
				return nil
			}
			return err
		}
	}
	if !config.AttachStdout && !config.AttachStderr {
		fmt.Fprintln(c.Out, id)
		return nil
	}
	if code := <-status; code != 0 {
		return StatusError{Code: code}
	}
	return nil
}

// waitExitOrRemoved delivers the container's exit code once it exited (or
// was removed, with --rm); 125 when waiting failed.
func (c *Cli) waitExitOrRemoved(ctx context.Context, id string, autoRemove bool) <-chan int {
	cond := container.WaitConditionNextExit
	if autoRemove {
		cond = container.WaitConditionRemoved
	}
	api, _ := c.Client()
	res := api.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: cond})
	out := make(chan int, 1)
	go func() {
		select {
		case r := <-res.Result:
			if r.Error != nil {
				fmt.Fprintf(c.Err, "Error waiting for container: %v\n", r.Error.Message)
				out <- 125
				return
			}
			out <- int(r.StatusCode)
		case err := <-res.Error:
			fmt.Fprintf(c.Err, "Error waiting for container: %v\n", err)
			out <- 125
		}
	}()
	return out
}

func (c *Cli) newStartCmd() *cobra.Command {
	var attach, interactive bool
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "start [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Start one or more stopped containers",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (attach || interactive) && len(args) > 1 {
				return errors.New("you cannot start and attach multiple containers at once")
			}
			if !attach && !interactive {
				var errs []string
				for _, n := range args {
					api, err := c.Client()
					if err == nil {
						_, err = api.ContainerStart(context.Background(), n, client.ContainerStartOptions{})
					}
					if err != nil {
						errs = append(errs, err.Error())
						continue
					}
					fmt.Fprintln(c.Out, n)
				}
				if len(errs) > 0 {
					return fmt.Errorf("%s\nError: failed to start containers: %s", strings.Join(errs, "\n"), strings.Join(args, ", "))
				}
				return nil
			}
			return c.startAttached(args[0], interactive, detachKeys)
		},
	}
	cmd.Flags().BoolVarP(&attach, "attach", "a", false, "Attach STDOUT/STDERR and forward signals")
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "Attach container's STDIN")
	cmd.Flags().StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	return cmd
}

func (c *Cli) startAttached(name string, interactive bool, detachKeys string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	api, err := c.Client()
	if err != nil {
		return err
	}
	info, err := api.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		return err
	}
	ctr := info.Container
	if detachKeys == "" {
		detachKeys = c.ConfigFile().DetachKeys
	}
	stdin := interactive && ctr.Config.OpenStdin
	if stdin && ctr.Config.Tty && !c.InIsTerminal() {
		return errors.New("the input device is not a TTY")
	}
	resp, err := api.ContainerAttach(ctx, ctr.ID, client.ContainerAttachOptions{Stream: true, Stdin: stdin,
		Stdout: true, Stderr: true, DetachKeys: detachKeys})
	if err != nil {
		return err
	}
	if !ctr.Config.Tty {
		stream.ForwardSignals(ctx, func(sig string) {
			api.ContainerKill(context.Background(), ctr.ID, client.ContainerKillOptions{Signal: sig})
		})
	}
	errCh := make(chan error, 1)
	go func() {
		errCh <- stream.Pump(ctx, resp.HijackedResponse, c.Streams, stream.Options{TTY: ctr.Config.Tty,
			Stdin: stdin, Stdout: true, Stderr: true, DetachKeys: detachKeys})
	}()
	status := c.waitExitOrRemoved(ctx, ctr.ID, ctr.HostConfig.AutoRemove)
	if _, err := api.ContainerStart(ctx, ctr.ID, client.ContainerStartOptions{}); err != nil {
		cancel()
		<-errCh
		return err
	}
	if ctr.Config.Tty && c.OutIsTerminal() {
		stream.MonitorSize(ctx, c.Streams, func(ctx context.Context, h, w uint) error {
			_, err := api.ContainerResize(ctx, ctr.ID, client.ContainerResizeOptions{Height: h, Width: w})
			return err
		})
	}
	if err := <-errCh; err != nil {
		if errors.Is(err, stream.ErrDetached) {
			return nil
		}
		return err
	}
	if code := <-status; code != 0 {
		return StatusError{Code: code}
	}
	return nil
}

func (c *Cli) newAttachCmd() *cobra.Command {
	var noStdin, sigProxy bool
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "attach [OPTIONS] CONTAINER",
		Short: "Attach local standard input, output, and error streams to a running container",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			api, err := c.Client()
			if err != nil {
				return err
			}
			info, err := api.ContainerInspect(ctx, args[0], client.ContainerInspectOptions{})
			if err != nil {
				return err
			}
			ctr := info.Container
			if !ctr.State.Running {
				return errors.New("You cannot attach to a stopped container, start it first")
			}
			if ctr.State.Paused {
				return errors.New("You cannot attach to a paused container, unpause it first")
			}
			if ctr.State.Restarting {
				return errors.New("You cannot attach to a restarting container, wait until it is running")
			}
			if detachKeys == "" {
				detachKeys = c.ConfigFile().DetachKeys
			}
			stdin := !noStdin && ctr.Config.OpenStdin
			if stdin && ctr.Config.Tty && !c.InIsTerminal() {
				return errors.New("the input device is not a TTY")
			}
			resp, err := api.ContainerAttach(ctx, ctr.ID, client.ContainerAttachOptions{Stream: true, Stdin: stdin,
				Stdout: true, Stderr: true, DetachKeys: detachKeys})
			if err != nil {
				return err
			}
			if sigProxy && !ctr.Config.Tty {
				stream.ForwardSignals(ctx, func(sig string) {
					api.ContainerKill(context.Background(), ctr.ID, client.ContainerKillOptions{Signal: sig})
				})
			}
			if ctr.Config.Tty && c.OutIsTerminal() {
				stream.MonitorSize(ctx, c.Streams, func(ctx context.Context, h, w uint) error {
					_, err := api.ContainerResize(ctx, ctr.ID, client.ContainerResizeOptions{Height: h, Width: w})
					return err
				})
			}
			status := c.waitExitOrRemoved(ctx, ctr.ID, false)
			err = stream.Pump(ctx, resp.HijackedResponse, c.Streams, stream.Options{TTY: ctr.Config.Tty,
				Stdin: stdin, Stdout: true, Stderr: true, DetachKeys: detachKeys})
			if errors.Is(err, stream.ErrDetached) {
				return nil
			}
			if err != nil {
				return err
			}
			// The container ended: pass its exit code through.
			if code := <-status; code != 0 {
				return StatusError{Code: code}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&noStdin, "no-stdin", false, "Do not attach STDIN")
	cmd.Flags().BoolVar(&sigProxy, "sig-proxy", true, "Proxy all received signals to the process")
	cmd.Flags().StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	return cmd
}

func parsePlatform(s string) (ocispec.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return ocispec.Platform{}, fmt.Errorf("%q: unknown operating system or architecture: invalid argument", s)
	}
	p := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}
