package network

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/berth-dev/berth/errdefs"
)

// IPv6 published ports are reserved like IPv4 ones, by a socket berthd
// holds on the host port, and that socket also serves: traffic to the
// host's IPv6 addresses is DNATed to the container before it reaches a
// socket, but [::1] cannot be (IPv6 has no route_localnet: a packet
// from ::1 never leaves the loopback device), so connections to [::1]
// land on the reserving socket and berthd relays them to the container,
// as dockerd's docker-proxy does.

// udpIdle is how long a UDP relay flow lives without traffic.
const udpIdle = 90 * time.Second

// reserve6 binds [ip]:port (ip unspecified: [::], IPv6 only) for proto
// and relays what arrives there to target.
func reserve6(proto string, ip netip.Addr, port uint16, target netip.AddrPort, logf func(string, ...any)) (io.Closer, error) {
	host := "::"
	if ip.IsValid() {
		host = ip.String()
	}
	addr := net.JoinHostPort(host, strconv.Itoa(int(port)))
	switch proto {
	case "tcp":
		l, err := net.Listen("tcp6", addr)
		if err != nil {
			return nil, err
		}
		p := &tcpRelay{l: l, target: target.String(), conns: map[net.Conn]bool{}, logf: logf}
		go p.serve()
		return p, nil
	case "udp":
		pc, err := net.ListenPacket("udp6", addr)
		if err != nil {
			return nil, err
		}
		p := &udpRelay{pc: pc, target: net.UDPAddrFromAddrPort(target), flows: map[string]*net.UDPConn{}, logf: logf}
		go p.serve()
		return p, nil
	}
	if proto == "sctp" {
		// Reserved only: berthd relays no SCTP, so [::1] is not served.
		return reserveSCTP(ip, port, true)
	}
	return nil, fmt.Errorf("publishing %s ports on IPv6: %w", proto, errdefs.ErrNotImplemented)
}

// tcpRelay copies each accepted connection to and from target.
type tcpRelay struct {
	l      net.Listener
	target string
	logf   func(string, ...any)

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]bool
}

func (p *tcpRelay) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		if p.closed {
			return false
		}
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *tcpRelay) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				p.logf("port relay %s: %v", p.l.Addr(), err)
			}
			return
		}
		go p.relay(c)
	}
}

func (p *tcpRelay) relay(c net.Conn) {
	defer c.Close()
	up, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		p.logf("port relay %s -> %s: %v", p.l.Addr(), p.target, err)
		return
	}
	defer up.Close()
	if !p.track(c, true) {
		return
	}
	defer p.track(c, false)
	p.track(up, true)
	defer p.track(up, false)
	done := make(chan struct{}, 2)
	half := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		done <- struct{}{}
	}
	go half(up, c)
	go half(c, up)
	<-done
	<-done
}

// Close stops accepting and cuts the relayed connections.
func (p *tcpRelay) Close() error {
	err := p.l.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	return err
}

// udpRelay keeps one flow (a socket connected to target) per client.
type udpRelay struct {
	pc     net.PacketConn
	target *net.UDPAddr
	logf   func(string, ...any)

	mu    sync.Mutex
	flows map[string]*net.UDPConn
}

func (p *udpRelay) serve() {
	buf := make([]byte, 65535)
	for {
		n, from, err := p.pc.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				p.logf("port relay %s: %v", p.pc.LocalAddr(), err)
			}
			return
		}
		p.mu.Lock()
		f := p.flows[from.String()]
		if f == nil && p.flows != nil {
			if f, err = net.DialUDP("udp", nil, p.target); err != nil {
				p.mu.Unlock()
				p.logf("port relay %s -> %s: %v", p.pc.LocalAddr(), p.target, err)
				continue
			}
			p.flows[from.String()] = f
			go p.back(f, from)
		}
		p.mu.Unlock()
		if f != nil {
			f.SetReadDeadline(time.Now().Add(udpIdle))
			f.Write(buf[:n])
		}
	}
}

// back copies target's replies to client until the flow idles out.
func (p *udpRelay) back(f *net.UDPConn, client net.Addr) {
	buf := make([]byte, 65535)
	for {
		f.SetReadDeadline(time.Now().Add(udpIdle))
		n, err := f.Read(buf)
		if err != nil {
			break
		}
		p.pc.WriteTo(buf[:n], client)
	}
	p.mu.Lock()
	if p.flows != nil && p.flows[client.String()] == f {
		delete(p.flows, client.String())
	}
	p.mu.Unlock()
	f.Close()
}

// Close stops the relay and its flows.
func (p *udpRelay) Close() error {
	err := p.pc.Close()
	p.mu.Lock()
	for _, f := range p.flows {
		f.Close()
	}
	p.flows = nil
	p.mu.Unlock()
	return err
}
