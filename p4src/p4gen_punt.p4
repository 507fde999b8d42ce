// p4gen punt path: the header between the NIC's host port and the hypervisor.
// Generated from p4gen/crossing/protocol.py (the one definition); do not edit.

const bit<8>  P4GEN_VERSION = 3;
const bit<16> P4GEN_RESUME_DONE = 0xffff;
const bit<8>  P4GEN_FLAG_FORWARDED = 0x1;
const bit<8>  P4GEN_FLAG_L4_DIRTY = 0x2;
const bit<8>  P4GEN_REASON_PLACEMENT = 0;
const bit<8>  P4GEN_REASON_FINISHED = 1;
const bit<8>  P4GEN_REASON_TO_HYPERVISOR = 2;
const bit<8>  P4GEN_REASON_LEARN = 3;

header p4gen_t {
    bit<8> version;  // P4GEN_VERSION
    bit<8> pipeline;  // 1-based number of the pipeline in the program
    bit<16> resume;  // stage to continue at, or P4GEN_RESUME_DONE
    bit<16> flow;  // 1-based index of the flow that classified the packet (0: none)
    bit<8> reason;  // P4GEN_REASON_* (NIC -> hypervisor)
    bit<8> code;  // to_hypervisor(code) argument
    bit<16> egress_port;  // with P4GEN_FLAG_FORWARDED: the port forward() chose
    bit<8> flags;  // P4GEN_FLAG_*
    bit<8> reserved;  // 0
    bit<32> flow_hash;  // NIC -> hypervisor: the flow key's hash (the flow table's key), 0 if none
}
