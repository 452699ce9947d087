package sockredirect

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Offsets in struct bpf_sock_addr (include/uapi/linux/bpf.h), the
// context of cgroup/connect4 and cgroup/getpeername4 programs.
const (
	ctxUserIP4   = 4  // destination (connect) or peer (getpeername), network order
	ctxUserPort  = 24 // port in network order, in the low 16 bits
	ctxProtocol  = 36
	ipprotoTCP   = 6
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
const (
	svcKeySize    = 8
	svcValueSize  = 8
	originSize    = 16
	maxServices   = 65536
	maxLocals     = 4096
	maxOrigins    = 65536
	servicesName  = "berth_services"
	localsName    = "berth_locals"
	originsName   = "berth_origins"
	connectName   = "berth_connect4"
	peernameName  = "berth_peername4"
	stackKey      = -8  // services key
	stackLocalKey = -16 // locals key
	stackCookie   = -24 // origins key
	stackOrigin   = -40 // origins value
)

// connect4 rewrites connect(dst) of a socket in the host's network
// namespace to the backend of dst when services holds dst (exact
// address first, then the wildcard 0.0.0.0 when dst is a local
// address), and notes the dialled address under the socket's cookie
// for getpeername4.
func connect4(hostCookie uint64, services, locals, origins *ebpf.Map) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		// Only the host's namespace: in a container, 127.0.0.1 is its own.
		asm.FnGetNetnsCookie.Call(),
		asm.LoadImm(asm.R1, int64(hostCookie), asm.DWord),
		asm.JNE.Reg(asm.R0, asm.R1, "pass"),
		asm.LoadMem(asm.R2, asm.R6, ctxProtocol, asm.Word),
		asm.JNE.Imm(asm.R2, ipprotoTCP, "pass"),
		// key = {user_ip4, user_port, protocol, 0}
		asm.StoreMem(asm.RFP, stackKey+6, asm.R2, asm.Byte),
		asm.StoreImm(asm.RFP, stackKey+7, 0, asm.Byte),
		asm.LoadMem(asm.R2, asm.R6, ctxUserPort, asm.Word),
		asm.StoreMem(asm.RFP, stackKey+4, asm.R2, asm.Half),
		asm.LoadMem(asm.R7, asm.R6, ctxUserIP4, asm.Word),
		asm.StoreMem(asm.RFP, stackKey, asm.R7, asm.Word),
		loadMap(asm.R1, services),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stackKey),
		asm.FnMapLookupElem.Call(),
		asm.JNE.Imm(asm.R0, 0, "found"),
		// No exact entry: the wildcard one, if dst is one of ours.
		asm.Mov.Reg(asm.R1, asm.R7),
		asm.And.Imm(asm.R1, 0xff),
		asm.JEq.Imm(asm.R1, loopbackNet, "wildcard"),
		asm.StoreMem(asm.RFP, stackLocalKey, asm.R7, asm.Word),
		loadMap(asm.R1, locals),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stackLocalKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.StoreImm(asm.RFP, stackKey, 0, asm.Word).WithSymbol("wildcard"),
		loadMap(asm.R1, services),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stackKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		// r8 = backend; origin = {dialled ip, port, backend ip, port}
		asm.Mov.Reg(asm.R8, asm.R0).WithSymbol("found"),
		asm.StoreMem(asm.RFP, stackOrigin, asm.R7, asm.Word),
		asm.LoadMem(asm.R2, asm.R6, ctxUserPort, asm.Word),
		asm.StoreMem(asm.RFP, stackOrigin+4, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R8, 0, asm.Word),
		asm.StoreMem(asm.RFP, stackOrigin+8, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R8, 4, asm.Half),
		asm.StoreMem(asm.RFP, stackOrigin+12, asm.R2, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnGetSocketCookie.Call(),
		asm.StoreMem(asm.RFP, stackCookie, asm.R0, asm.DWord),
		loadMap(asm.R1, origins),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stackCookie),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, stackOrigin),
		asm.Mov.Imm(asm.R4, 0), // BPF_ANY
		asm.FnMapUpdateElem.Call(),
		// A full origins map costs getpeername's answer, not the
		// connection: the rewrite happens whatever the update said.
		asm.LoadMem(asm.R2, asm.RFP, stackOrigin+8, asm.Word),
		asm.StoreMem(asm.R6, ctxUserIP4, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.RFP, stackOrigin+12, asm.Word),
		asm.StoreMem(asm.R6, ctxUserPort, asm.R2, asm.Word),
		asm.Mov.Imm(asm.R0, sockAddrPass).WithSymbol("pass"),
		asm.Return(),
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

// loadMap loads m's pointer into dst.
func loadMap(dst asm.Register, m *ebpf.Map) asm.Instruction {
	ins := asm.LoadMapPtr(dst, 0)
	// AssociateMap only fails for instructions that are no map load.
	_ = ins.AssociateMap(m)
	return ins
}
