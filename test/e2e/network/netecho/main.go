// Command netecho is the network tests' workload, built static into a
// FROM-scratch image: it answers every TCP connection and every UDP
// datagram on the given ports with one line of text, and swallows what
// is sent to its sink ports.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"strings"
)

func main() {
	tcp := flag.String("tcp", "", "comma-separated TCP listen addresses (\":8080\")")
	udp := flag.String("udp", "", "comma-separated UDP listen addresses")
	reply := flag.String("reply", "hello", "the line sent back")
	sink := flag.String("sink", "", "comma-separated TCP listen addresses that read and discard (throughput)")
	flag.Parse()
	line := []byte(*reply + "\n")
	for _, a := range split(*tcp) {
		l, err := net.Listen("tcp", a)
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					log.Fatal(err)
				}
				c.Write(line)
				c.Close()
			}
		}()
	}
	for _, a := range split(*sink) {
		l, err := net.Listen("tcp", a)
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					log.Fatal(err)
				}
				go func() { io.Copy(io.Discard, c); c.Close() }()
			}
		}()
	}
	for _, a := range split(*udp) {
		pc, err := net.ListenPacket("udp", a)
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			b := make([]byte, 1500)
			for {
				_, from, err := pc.ReadFrom(b)
				if err != nil {
					log.Fatal(err)
				}
				pc.WriteTo(line, from)
			}
		}()
	}
	fmt.Println("ready")
	select {}
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
