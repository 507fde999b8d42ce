// p4gen punt path: the header between the NIC's host port and the hypervisor.
//
// This file is the single definition of the punt header. The P4 emitter
// inlines it into every program.p4, and the Python side reads its layout
// and constants from this file (p4gen.backend.punt), so the two cannot
// disagree.
//
// NIC -> hypervisor: the packet leaves on the host port with p4gen_t before
// its Ethernet header. `resume` is the stage (IR order number) the hypervisor
// continues at; P4GEN_RESUME_DONE means the pipeline has finished and the
// packet goes to the VM. `reason` says why it was punted.
// Hypervisor -> NIC: the same header before the Ethernet header on the host
// port. `resume` is the stage the NIC continues at; P4GEN_RESUME_DONE means
// "no more processing: send it out of egress_port".

const bit<8>  P4GEN_VERSION = 1;
const bit<16> P4GEN_RESUME_DONE = 0xffff;

const bit<8>  P4GEN_REASON_PLACEMENT = 0;     // the next stage runs in the hypervisor
const bit<8>  P4GEN_REASON_FINISHED = 1;      // the pipeline ended; deliver to the VM
const bit<8>  P4GEN_REASON_TO_HYPERVISOR = 2; // a to_hypervisor() primitive; `code` has its argument

header p4gen_t {
    bit<8>  version;
    bit<8>  pipeline;     // 1-based index of the pipeline in the program
    bit<16> resume;       // stage to continue at, or P4GEN_RESUME_DONE
    bit<16> flow;         // 1-based index of the flow that classified the packet (0: none)
    bit<8>  reason;       // P4GEN_REASON_*
    bit<8>  code;         // to_hypervisor(reason) argument
    bit<16> egress_port;  // hypervisor -> NIC with P4GEN_RESUME_DONE: the port to send on
    bit<16> reserved;
}
