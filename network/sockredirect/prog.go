package sockredirect

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Offsets in struct bpf_sock_addr (include/uapi/linux/bpf.h), the
// context of cgroup/connect4 and cgroup/getpeername4 programs.
const (
	ctxUserIP4   = 4  // destination (connect) or peer (getpeername), network order
	ctxUserIP6   = 8  // the same for IPv6: four 32-bit words
	ctxUserPort  = 24 // port in network order, in the low 16 bits
	ctxProtocol  = 36
	ctxMsgSrcIP4 = 40 // sendmsg4's source address (0: the route's)
	afInet       = 2
	afInet6      = 10
	ipprotoTCP   = 6
	ipprotoUDP   = 17
	loopbackNet  = 127 // first octet of 127.0.0.0/8, every address of it is local
	sockAddrPass = 1   // the only verdict that lets the call go on
)

// The maps' layouts (little-endian hosts only, see Open).
//
//	services: key   {addr [4]byte, port [2]byte (network order), proto u8, pad u8}
//	          value {addr [4]byte, port [2]byte (network order), pad [2]byte}
//	locals:   key   addr [4]byte, value u8 — the host's own IPv4 addresses
//	origins:  key   socket cookie u64
//	          value {dialled addr u32, dialled port u32, backend addr u32, backend port u32}
//	rev:      key   {socket cookie u64, backend addr [4]byte, backend port [2]byte, pad [2]byte}
//	          value {dialled addr u32, dialled port u32} (UDP)
const (
	svcKeySize    = 8
	svcValueSize  = 8
	originSize    = 16
	maxServices   = 65536
	maxLocals     = 4096
	maxOrigins    = 65536
	svc6KeySize   = 20
	svc6ValueSize = 20
	origin6Size   = 40
	services6Name = "berth_services6"
	locals6Name   = "berth_locals6"
	origins6Name  = "berth_origins6"
	connect6Name  = "berth_connect6"
	peername6Name = "berth_peername6"
	servicesName  = "berth_services"
	localsName    = "berth_locals"
	originsName   = "berth_origins"
	connectName   = "berth_connect4"
	peernameName  = "berth_peername4"
	stackKey      = -8  // services key
	stackLocalKey = -16 // locals key
	stackCookie   = -24 // origins key
	stackOrigin   = -40 // origins value
	stackRevKey   = -56 // rev key
	stackSockaddr = -72 // bpf_bind's sockaddr_in
	revKeySize    = 16
	revValueSize  = 8
	revName       = "berth_rev"
	sendmsgName   = "berth_sendmsg4"
	recvmsgName   = "berth_recvmsg4"
)

// connect4 rewrites connect(dst) of a TCP or UDP socket in the host's
// network namespace to the backend of dst when services holds dst
// (exact address first, then the wildcard 0.0.0.0 when dst is a local
// address), and notes the dialled address under the socket's cookie
// for getpeername4 (and, for UDP, for recvmsg4).
func connect4(hostCookie uint64, services, locals, origins, rev *ebpf.Map) asm.Instructions {
	return redirect4(hostCookie, false, services, locals, origins, rev)
}

// sendmsg4 is connect4 for the datagrams of unconnected UDP sockets:
// each sendmsg(dst) goes to dst's backend, and the backend's address is
// noted under (socket cookie, backend) for recvmsg4.
func sendmsg4(hostCookie uint64, services, locals, rev *ebpf.Map) asm.Instructions {
	return redirect4(hostCookie, true, services, locals, nil, rev)
}

// redirect4 is connect4, or with sendmsg sendmsg4.
func redirect4(hostCookie uint64, sendmsg bool, services, locals, origins, rev *ebpf.Map) asm.Instructions {
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		// Only the host's namespace: in a container, 127.0.0.1 is its own.
		asm.FnGetNetnsCookie.Call(),
		asm.LoadImm(asm.R1, int64(hostCookie), asm.DWord),
		asm.JNE.Reg(asm.R0, asm.R1, "pass"),
		asm.LoadMem(asm.R2, asm.R6, ctxProtocol, asm.Word),
	}
	if !sendmsg {
		insns = append(insns, asm.JEq.Imm(asm.R2, ipprotoTCP, "key"))
	}
	insns = append(insns,
		asm.JNE.Imm(asm.R2, ipprotoUDP, "pass"),
		// key = {user_ip4, user_port, protocol, 0}
		asm.StoreMem(asm.RFP, stackKey+6, asm.R2, asm.Byte).WithSymbol("key"),
		asm.StoreImm(asm.RFP, stackKey+7, 0, asm.Byte),
		asm.LoadMem(asm.R2, asm.R6, ctxUserPort, asm.Word),
		asm.StoreMem(asm.RFP, stackKey+4, asm.R2, asm.Half),
		asm.LoadMem(asm.R7, asm.R6, ctxUserIP4, asm.Word),
		asm.StoreMem(asm.RFP, stackKey, asm.R7, asm.Word),
	)
	insns = append(insns, lookup(services, stackKey)...)
	insns = append(insns,
		asm.JNE.Imm(asm.R0, 0, "found"),
		// No exact entry: the wildcard one, if dst is one of ours.
		asm.Mov.Reg(asm.R1, asm.R7),
		asm.And.Imm(asm.R1, 0xff),
		asm.JEq.Imm(asm.R1, loopbackNet, "wildcard"),
		asm.StoreMem(asm.RFP, stackLocalKey, asm.R7, asm.Word),
	)
	insns = append(insns, lookup(locals, stackLocalKey)...)
	insns = append(insns,
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.StoreImm(asm.RFP, stackKey, 0, asm.Word).WithSymbol("wildcard"),
	)
	insns = append(insns, lookup(services, stackKey)...)
	insns = append(insns,
		asm.JEq.Imm(asm.R0, 0, "pass"),
		// origin = {dialled ip, port, backend ip, port}
		asm.StoreMem(asm.RFP, stackOrigin, asm.R7, asm.Word).WithSymbol("found"),
		asm.LoadMem(asm.R2, asm.R6, ctxUserPort, asm.Word),
		asm.StoreMem(asm.RFP, stackOrigin+4, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R0, 0, asm.Word),
		asm.StoreMem(asm.RFP, stackOrigin+8, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R0, 4, asm.Half),
		asm.StoreMem(asm.RFP, stackOrigin+12, asm.R2, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnGetSocketCookie.Call(),
		asm.StoreMem(asm.RFP, stackCookie, asm.R0, asm.DWord),
	)
	// Full LRU maps cost the answers' addresses, not the connection:
	// the rewrite happens whatever the updates said.
	// The backend sees the client's address as with the DNAT: the
	// address dialled when it is not a loopback one (whose DNAT is
	// masqueraded to the bridge's address, which the route picks).
	if sendmsg {
		insns = append(insns,
			asm.Mov.Reg(asm.R1, asm.R7),
			asm.And.Imm(asm.R1, 0xff),
			asm.JEq.Imm(asm.R1, loopbackNet, "sourced"),
			asm.LoadMem(asm.R2, asm.R6, ctxMsgSrcIP4, asm.Word),
			asm.JNE.Imm(asm.R2, 0, "sourced"), // the socket's own
			asm.StoreMem(asm.R6, ctxMsgSrcIP4, asm.R7, asm.Word),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("sourced"),
		)
	} else {
		insns = append(insns,
			asm.Mov.Reg(asm.R1, asm.R7),
			asm.And.Imm(asm.R1, 0xff),
			asm.JEq.Imm(asm.R1, loopbackNet, "bound"),
			// sockaddr_in{AF_INET, port 0, dialled}: bound without a
			// port (the kernel picks it at connect); a socket the
			// program bound already fails the bind, and keeps its own.
			asm.StoreImm(asm.RFP, stackSockaddr, afInet, asm.Half),
			asm.StoreImm(asm.RFP, stackSockaddr+2, 0, asm.Half),
			asm.StoreMem(asm.RFP, stackSockaddr+4, asm.R7, asm.Word),
			asm.StoreImm(asm.RFP, stackSockaddr+8, 0, asm.Word),
			asm.StoreImm(asm.RFP, stackSockaddr+12, 0, asm.Word),
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, stackSockaddr),
			asm.Mov.Imm(asm.R3, 16),
			asm.FnBind.Call(),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("bound"),
		)
	}
	if !sendmsg {
		insns = append(insns, update(origins, stackCookie, stackOrigin)...)
		insns = append(insns,
			asm.LoadMem(asm.R2, asm.R6, ctxProtocol, asm.Word),
			asm.JNE.Imm(asm.R2, ipprotoUDP, "rewrite"),
		)
	}
	// UDP: rev {cookie, backend ip, backend port} = {dialled ip, port},
	// the origin's first half.
	insns = append(insns,
		asm.LoadMem(asm.R2, asm.RFP, stackCookie, asm.DWord),
		asm.StoreMem(asm.RFP, stackRevKey, asm.R2, asm.DWord),
		asm.LoadMem(asm.R2, asm.RFP, stackOrigin+8, asm.Word),
		asm.StoreMem(asm.RFP, stackRevKey+8, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.RFP, stackOrigin+12, asm.Word),
		asm.StoreMem(asm.RFP, stackRevKey+12, asm.R2, asm.Half),
		asm.StoreImm(asm.RFP, stackRevKey+14, 0, asm.Half),
	)
	insns = append(insns, update(rev, stackRevKey, stackOrigin)...)
	insns = append(insns,
		asm.LoadMem(asm.R2, asm.RFP, stackOrigin+8, asm.Word).WithSymbol("rewrite"),
		asm.StoreMem(asm.R6, ctxUserIP4, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.RFP, stackOrigin+12, asm.Word),
		asm.StoreMem(asm.R6, ctxUserPort, asm.R2, asm.Word),
		asm.Mov.Imm(asm.R0, sockAddrPass).WithSymbol("pass"),
		asm.Return(),
	)
	return insns
}

// recvmsg4 shows the source of a datagram from a backend the socket
// sent to (or connected to) as the address it dialled.
func recvmsg4(rev *ebpf.Map) asm.Instructions {
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.FnGetSocketCookie.Call(),
		asm.StoreMem(asm.RFP, stackRevKey, asm.R0, asm.DWord),
		asm.LoadMem(asm.R2, asm.R6, ctxUserIP4, asm.Word),
		asm.StoreMem(asm.RFP, stackRevKey+8, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R6, ctxUserPort, asm.Word),
		asm.StoreMem(asm.RFP, stackRevKey+12, asm.R2, asm.Half),
		asm.StoreImm(asm.RFP, stackRevKey+14, 0, asm.Half),
	}
	insns = append(insns, lookup(rev, stackRevKey)...)
	insns = append(insns,
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.StoreMem(asm.R6, ctxUserIP4, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R0, 4, asm.Word),
		asm.StoreMem(asm.R6, ctxUserPort, asm.R1, asm.Word),
		asm.Mov.Imm(asm.R0, sockAddrPass).WithSymbol("pass"),
		asm.Return(),
	)
	return insns
}

// update stores the value at fp+value under the key at fp+key in m.
func update(m *ebpf.Map, key, value int16) asm.Instructions {
	return asm.Instructions{
		loadMap(asm.R1, m),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, int32(key)),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, int32(value)),
		asm.Mov.Imm(asm.R4, 0), // BPF_ANY
		asm.FnMapUpdateElem.Call(),
	}
}

// getpeername4 shows a redirected socket's peer as the address it
// dialled, as long as the peer is still the backend connect4 chose.
func getpeername4(origins *ebpf.Map) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.FnGetSocketCookie.Call(),
		asm.StoreMem(asm.RFP, stackCookie, asm.R0, asm.DWord),
		loadMap(asm.R1, origins),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stackCookie),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.LoadMem(asm.R1, asm.R6, ctxUserIP4, asm.Word),
		asm.LoadMem(asm.R2, asm.R0, 8, asm.Word),
		asm.JNE.Reg(asm.R1, asm.R2, "pass"),
		asm.LoadMem(asm.R1, asm.R6, ctxUserPort, asm.Word),
		asm.LoadMem(asm.R2, asm.R0, 12, asm.Word),
		asm.JNE.Reg(asm.R1, asm.R2, "pass"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.StoreMem(asm.R6, ctxUserIP4, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R0, 4, asm.Word),
		asm.StoreMem(asm.R6, ctxUserPort, asm.R1, asm.Word),
		asm.Mov.Imm(asm.R0, sockAddrPass).WithSymbol("pass"),
		asm.Return(),
	}
}

// Stack layout of connect6.
const (
	s6Key         = -24 // services6 key: addr 16, port 2, proto 1, pad 1
	s6Key4        = -32 // services key of a v4-mapped destination
	s6Local       = -48 // locals6 / locals key
	s6Cookie      = -56
	s6Origin      = -96        // origins6 value: dialled addr 16, port 4, backend addr 16, port 4
	s6Sockaddr    = -128       // bpf_bind's sockaddr_in6 (28 bytes)
	loopback6Word = 0x01000000 // the last word of ::1 as a little-endian word
	v4Mapped      = -65536     // 0x0000ffff in network order, as a little-endian word (0xffff0000)
)

// connect6 is connect4 for IPv6 sockets: an IPv6 destination is looked
// up in services6 (exact, then the wildcard :: when it is a local
// address, ::1 included), a v4-mapped one (::ffff:a.b.c.d, a dual-stack
// socket dialling IPv4) in the IPv4 services and rewritten to the
// v4-mapped backend.
func connect6(hostCookie uint64, services, locals, services6, locals6, origins6 *ebpf.Map) asm.Instructions {
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.FnGetNetnsCookie.Call(),
		asm.LoadImm(asm.R1, int64(hostCookie), asm.DWord),
		asm.JNE.Reg(asm.R0, asm.R1, "pass"),
		asm.LoadMem(asm.R2, asm.R6, ctxProtocol, asm.Word),
		asm.JNE.Imm(asm.R2, ipprotoTCP, "pass"),
		asm.StoreMem(asm.RFP, s6Key+18, asm.R2, asm.Byte),
		asm.StoreImm(asm.RFP, s6Key+19, 0, asm.Byte),
		asm.LoadMem(asm.R2, asm.R6, ctxUserPort, asm.Word),
		asm.StoreMem(asm.RFP, s6Key+16, asm.R2, asm.Half),
	}
	insns = append(insns, copyWords(asm.RFP, s6Key, asm.R6, ctxUserIP6, 4)...)
	insns = append(insns,
		// ::ffff:a.b.c.d?
		asm.LoadMem(asm.R2, asm.RFP, s6Key, asm.Word),
		asm.JNE.Imm(asm.R2, 0, "v6"),
		asm.LoadMem(asm.R2, asm.RFP, s6Key+4, asm.Word),
		asm.JNE.Imm(asm.R2, 0, "v6"),
		asm.LoadMem(asm.R2, asm.RFP, s6Key+8, asm.Word),
		asm.JNE.Imm32(asm.R2, v4Mapped, "v6"),
		asm.LoadMem(asm.R7, asm.RFP, s6Key+12, asm.Word),
		asm.StoreMem(asm.RFP, s6Key4, asm.R7, asm.Word),
		asm.LoadMem(asm.R2, asm.RFP, s6Key+16, asm.Half),
		asm.StoreMem(asm.RFP, s6Key4+4, asm.R2, asm.Half),
		asm.StoreImm(asm.RFP, s6Key4+6, ipprotoTCP, asm.Byte),
		asm.StoreImm(asm.RFP, s6Key4+7, 0, asm.Byte),
	)
	insns = append(insns, lookup(services, s6Key4)...)
	insns = append(insns,
		asm.JNE.Imm(asm.R0, 0, "found4"),
		asm.Mov.Reg(asm.R1, asm.R7),
		asm.And.Imm(asm.R1, 0xff),
		asm.JEq.Imm(asm.R1, loopbackNet, "wildcard4"),
		asm.StoreMem(asm.RFP, s6Local, asm.R7, asm.Word),
	)
	insns = append(insns, lookup(locals, s6Local)...)
	insns = append(insns,
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.StoreImm(asm.RFP, s6Key4, 0, asm.Word).WithSymbol("wildcard4"),
	)
	insns = append(insns, lookup(services, s6Key4)...)
	insns = append(insns,
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.StoreImm(asm.RFP, s6Origin+20, 0, asm.Word).WithSymbol("found4"),
		asm.StoreImm(asm.RFP, s6Origin+24, 0, asm.Word),
		asm.StoreImm(asm.RFP, s6Origin+28, v4Mapped, asm.Word),
		asm.LoadMem(asm.R2, asm.R0, 0, asm.Word),
		asm.StoreMem(asm.RFP, s6Origin+32, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R0, 4, asm.Half),
		asm.StoreMem(asm.RFP, s6Origin+36, asm.R2, asm.Word),
		asm.Ja.Label("rewrite"),
	)
	// IPv6: exact entry, else the wildcard for a local destination.
	v6 := lookup(services6, s6Key)
	v6[0] = v6[0].WithSymbol("v6")
	insns = append(insns, v6...)
	insns = append(insns, asm.JNE.Imm(asm.R0, 0, "found6"))
	insns = append(insns, copyWords(asm.RFP, s6Local, asm.RFP, s6Key, 4)...)
	insns = append(insns, lookup(locals6, s6Local)...)
	insns = append(insns,
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.StoreImm(asm.RFP, s6Key, 0, asm.Word),
		asm.StoreImm(asm.RFP, s6Key+4, 0, asm.Word),
		asm.StoreImm(asm.RFP, s6Key+8, 0, asm.Word),
		asm.StoreImm(asm.RFP, s6Key+12, 0, asm.Word),
	)
	insns = append(insns, lookup(services6, s6Key)...)
	insns = append(insns, asm.JEq.Imm(asm.R0, 0, "pass"))
	found6 := copyWords(asm.RFP, s6Origin+20, asm.R0, 0, 4)
	found6[0] = found6[0].WithSymbol("found6")
	insns = append(insns, found6...)
	insns = append(insns,
		asm.LoadMem(asm.R2, asm.R0, 16, asm.Half),
		asm.StoreMem(asm.RFP, s6Origin+36, asm.R2, asm.Word),
	)
	// origin = dialled + backend; then the rewrite.
	rewrite := copyWords(asm.RFP, s6Origin, asm.R6, ctxUserIP6, 4)
	rewrite[0] = rewrite[0].WithSymbol("rewrite")
	insns = append(insns, rewrite...)
	// Bound to the IPv6 address dialled, as connect4 does, unless it is
	// ::1, link-local (it would need its interface) or v4-mapped.
	insns = append(insns,
		asm.LoadMem(asm.R2, asm.RFP, s6Origin, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R2),
		asm.And.Imm(asm.R1, 0xc0ff),
		asm.JEq.Imm(asm.R1, 0x80fe, "bound6"), // fe80::/10
		asm.JNE.Imm(asm.R2, 0, "bind6"),
		asm.LoadMem(asm.R2, asm.RFP, s6Origin+4, asm.Word),
		asm.JNE.Imm(asm.R2, 0, "bind6"),
		asm.LoadMem(asm.R2, asm.RFP, s6Origin+8, asm.Word),
		asm.JEq.Imm32(asm.R2, v4Mapped, "bound6"),
		asm.JNE.Imm(asm.R2, 0, "bind6"),
		asm.LoadMem(asm.R2, asm.RFP, s6Origin+12, asm.Word),
		asm.JEq.Imm(asm.R2, loopback6Word, "bound6"),
		// sockaddr_in6{AF_INET6, port 0, flowinfo 0, dialled, scope 0}
		asm.StoreImm(asm.RFP, s6Sockaddr, afInet6, asm.Half).WithSymbol("bind6"),
		asm.StoreImm(asm.RFP, s6Sockaddr+2, 0, asm.Half),
		asm.StoreImm(asm.RFP, s6Sockaddr+4, 0, asm.Word),
	)
	insns = append(insns, copyWords(asm.RFP, s6Sockaddr+8, asm.RFP, s6Origin, 4)...)
	insns = append(insns,
		asm.StoreImm(asm.RFP, s6Sockaddr+24, 0, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, s6Sockaddr),
		asm.Mov.Imm(asm.R3, 28),
		asm.FnBind.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("bound6"),
	)
	insns = append(insns,
		asm.LoadMem(asm.R2, asm.R6, ctxUserPort, asm.Word),
		asm.StoreMem(asm.RFP, s6Origin+16, asm.R2, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnGetSocketCookie.Call(),
		asm.StoreMem(asm.RFP, s6Cookie, asm.R0, asm.DWord),
		loadMap(asm.R1, origins6),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, s6Cookie),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, s6Origin),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnMapUpdateElem.Call(),
	)
	insns = append(insns, copyWords(asm.R6, ctxUserIP6, asm.RFP, s6Origin+20, 4)...)
	insns = append(insns,
		asm.LoadMem(asm.R2, asm.RFP, s6Origin+36, asm.Word),
		asm.StoreMem(asm.R6, ctxUserPort, asm.R2, asm.Word),
		asm.Mov.Imm(asm.R0, sockAddrPass).WithSymbol("pass"),
		asm.Return(),
	)
	return insns
}

// getpeername6 is getpeername4 for IPv6 sockets.
func getpeername6(origins6 *ebpf.Map) asm.Instructions {
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.FnGetSocketCookie.Call(),
		asm.StoreMem(asm.RFP, stackCookie, asm.R0, asm.DWord),
	}
	insns = append(insns, lookup(origins6, stackCookie)...)
	insns = append(insns, asm.JEq.Imm(asm.R0, 0, "pass"))
	for i := int16(0); i < 4; i++ {
		insns = append(insns,
			asm.LoadMem(asm.R1, asm.R6, ctxUserIP6+4*i, asm.Word),
			asm.LoadMem(asm.R2, asm.R0, 20+4*i, asm.Word),
			asm.JNE.Reg(asm.R1, asm.R2, "pass"),
		)
	}
	insns = append(insns,
		asm.LoadMem(asm.R1, asm.R6, ctxUserPort, asm.Word),
		asm.LoadMem(asm.R2, asm.R0, 36, asm.Word),
		asm.JNE.Reg(asm.R1, asm.R2, "pass"),
	)
	insns = append(insns, copyWords(asm.R6, ctxUserIP6, asm.R0, 0, 4)...)
	insns = append(insns,
		asm.LoadMem(asm.R1, asm.R0, 16, asm.Word),
		asm.StoreMem(asm.R6, ctxUserPort, asm.R1, asm.Word),
		asm.Mov.Imm(asm.R0, sockAddrPass).WithSymbol("pass"),
		asm.Return(),
	)
	return insns
}

// lookup looks the key at fp+key up in m: r0 is the value or 0.
func lookup(m *ebpf.Map, key int16) asm.Instructions {
	return asm.Instructions{
		loadMap(asm.R1, m),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, int32(key)),
		asm.FnMapLookupElem.Call(),
	}
}

// copyWords copies n 32-bit words from src+soff to dst+doff (via r2).
func copyWords(dst asm.Register, doff int16, src asm.Register, soff int16, n int16) asm.Instructions {
	var out asm.Instructions
	for i := int16(0); i < n; i++ {
		out = append(out,
			asm.LoadMem(asm.R2, src, soff+4*i, asm.Word),
			asm.StoreMem(dst, doff+4*i, asm.R2, asm.Word))
	}
	return out
}

// loadMap loads m's pointer into dst.
func loadMap(dst asm.Register, m *ebpf.Map) asm.Instruction {
	ins := asm.LoadMapPtr(dst, 0)
	// AssociateMap only fails for instructions that are no map load.
	_ = ins.AssociateMap(m)
	return ins
}
