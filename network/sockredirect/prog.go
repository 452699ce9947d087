package sockredirect

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Offsets in struct bpf_sock_addr (include/uapi/linux/bpf.h), the
// context of the cgroup/connect, sendmsg, recvmsg and getpeername
// programs.
const (
	ctxUserIP4   = 4  // destination (connect, sendmsg) or peer (recvmsg, getpeername), network order
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

// The maps (little-endian hosts only, see Open). Ports and addresses
// are in network order; "u32" words are as the context holds them.
//
//	services:  key   {addr [4]byte, port [2]byte, proto u8, pad u8}
//	           value {addr [4]byte, port [2]byte, pad [2]byte}
//	services6: key   {addr [16]byte, port [2]byte, proto u8, pad u8}
//	           value {addr [16]byte, port [2]byte, pad [2]byte}
//	locals, locals6: key addr, value u8 — the host's own addresses
//	origins:   key   socket cookie u64 (LRU: connect4 -> getpeername4)
//	           value {dialled addr u32, port u32, backend addr u32, port u32}
//	origins6:  the same with 16-byte addresses (connect6 -> getpeername6)
//	rev:       key   {socket cookie u64, backend addr [4]byte, port [2]byte, pad [2]byte}
//	           value {dialled addr u32, port u32} (LRU, UDP: -> recvmsg4)
const (
	servicesName, services6Name = "berth_services", "berth_services6"
	localsName, locals6Name     = "berth_locals", "berth_locals6"
	originsName, origins6Name   = "berth_origins", "berth_origins6"
	revName                     = "berth_rev"

	svcKeySize, svcValueSize   = 8, 8
	svc6KeySize, svc6ValueSize = 20, 20
	originSize, origin6Size    = 16, 40
	revKeySize, revValueSize   = 16, 8

	maxServices = 65536
	maxLocals   = 4096
	maxOrigins  = 65536 // per LRU map: sockets remembered at once
)

// Program names (as bpftool and the kernel's program info show them).
const (
	connectName   = "berth_connect4"
	peernameName  = "berth_peername4"
	connect6Name  = "berth_connect6"
	peername6Name = "berth_peername6"
	sendmsgName   = "berth_sendmsg4"
	recvmsgName   = "berth_recvmsg4"
)

// Stack layout of connect4, sendmsg4 and recvmsg4 (rev key only).
const (
	stackKey      = -8  // services key
	stackLocalKey = -16 // locals key
	stackCookie   = -24 // origins key
	stackOrigin   = -40 // origins value; its first half is rev's value
	stackRevKey   = -56 // rev key
	stackSockaddr = -72 // bpf_bind's sockaddr_in
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
