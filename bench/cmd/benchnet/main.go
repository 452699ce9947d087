// Command benchnet is the network bench's workload, built static into a
// FROM-scratch image (and run as is on the host for the host-network
// baseline).
//
//	benchnet serve -addr :8080      HTTP: / answers "ok\n", /1m 1 MiB
//	benchnet lookup -n 200 NAME...  resolve each NAME n times through
//	                                /etc/resolv.conf's server, print the
//	                                median and p90 latency in microseconds
//
// lookup talks DNS itself (Go's resolver, no cache) and asks for A
// records only, so every lookup is one query to the container's resolver
// and back, and nothing is forwarded off the machine for a missing AAAA.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: benchnet serve|lookup ...")
	}
	switch os.Args[1] {
	case "serve":
		serve(os.Args[2:])
	case "lookup":
		lookup(os.Args[2:])
	case "--version":
		// The bench's version column.
		fmt.Println("benchnet (bench/cmd/benchnet, Go net/http)")
	default:
		log.Fatalf("benchnet: unknown command %q", os.Args[1])
	}
}

func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", ":8080", "listen address")
	fs.Parse(args)
	small := []byte("ok\n")
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte('a' + i%26)
	}
	bigLen := strconv.Itoa(len(big))
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "3")
		w.Write(small)
	})
	mux.HandleFunc("/1m", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", bigLen)
		w.Write(big)
	})
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("ready")
	log.Fatal(http.Serve(l, mux))
}

func lookup(args []string) {
	fs := flag.NewFlagSet("lookup", flag.ExitOnError)
	n := fs.Int("n", 200, "lookups per name")
	fs.Parse(args)
	if fs.NArg() == 0 {
		log.Fatal("lookup: no name given")
	}
	r := &net.Resolver{PreferGo: true}
	var samples []time.Duration
	for _, name := range fs.Args() {
		// One untimed lookup: the first pays for reading resolv.conf.
		if _, err := r.LookupNetIP(context.Background(), "ip4", name); err != nil {
			log.Fatalf("lookup %s: %v", name, err)
		}
		for range *n {
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := r.LookupNetIP(ctx, "ip4", name)
			cancel()
			if err != nil {
				log.Fatalf("lookup %s: %v", name, err)
			}
			samples = append(samples, time.Since(start))
		}
	}
	slices.Sort(samples)
	fmt.Printf("median_us %d p90_us %d n %d\n", samples[len(samples)/2].Microseconds(), samples[len(samples)*9/10].Microseconds(), len(samples))
}
