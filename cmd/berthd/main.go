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
			if err := daemon.LoadConfigFile(&cfg, cmd.Flags()); err != nil {
				return err
			}
			level, err := daemon.LogLevel(cfg)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return daemon.Run(ctx, cfg, daemon.Options{NewContainers: daemon.NewContainers}, log)
		},
	}
	cmd.SetVersionTemplate("Berth version {{.Version}}\n")
	daemon.InstallFlags(cmd.Flags(), &cfg)
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "berthd:", err)
		os.Exit(1)
	}
}
