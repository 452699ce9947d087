// Command berthd is the Berth daemon: it serves the Docker Engine API.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/daemon"
)

func main() {
	var cfg daemon.Config
	cmd := &cobra.Command{
		Use:           "berthd [OPTIONS]",
		Short:         "A self-sufficient runtime for containers",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       daemon.Version,
		RunE: func(cmd *cobra.Command, _ []string) error {
			flags := cfg // a reload starts again from the flags alone
			reload := func() (daemon.Config, error) {
				c := flags
				err := daemon.LoadConfigFile(&c, cmd.Flags())
				return c, err
			}
			if err := daemon.LoadConfigFile(&cfg, cmd.Flags()); err != nil {
				return err
			}
			lv, err := daemon.LogLevel(cfg)
			if err != nil {
				return err
			}
			var level slog.LevelVar
			level.Set(lv)
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: &level}))
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return daemon.Run(ctx, cfg, daemon.Options{NewContainers: daemon.NewContainers, ReloadConfig: reload, Level: &level}, log)
		},
	}
	cmd.SetVersionTemplate("Berth version {{.Version}}\n")
	daemon.InstallFlags(cmd.Flags(), &cfg)
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "berthd:", err)
		os.Exit(1)
	}
}
