// BMv2's own ceiling for benchmarks/real_tcp.py: one exact table on the ingress
// port, two constant entries (port 1 <-> port 2), nothing else.
#include <core.p4>
#include <v1model.p4>

header ethernet_t {
    bit<48> dst;
    bit<48> src;
    bit<16> ether_type;
}

struct headers_t {
    ethernet_t ethernet;
}

struct meta_t { }

parser TrivialParser(packet_in pkt, out headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) {
    state start {
        pkt.extract(hdr.ethernet);
        transition accept;
    }
}

control TrivialVerify(inout headers_t hdr, inout meta_t meta) {
    apply { }
}

control TrivialIngress(inout headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) {
    action fwd(bit<9> port) {
        sm.egress_spec = port;
    }
    action drop() {
        mark_to_drop(sm);
    }
    table ports {
        key = { sm.ingress_port : exact; }
        actions = { fwd; drop; }
        const entries = {
            1 : fwd(2);
            2 : fwd(1);
        }
        default_action = drop();
    }
    apply {
        ports.apply();
    }
}

control TrivialEgress(inout headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) {
    apply { }
}

control TrivialCompute(inout headers_t hdr, inout meta_t meta) {
    apply { }
}

control TrivialDeparser(packet_out pkt, in headers_t hdr) {
    apply {
        pkt.emit(hdr.ethernet);
    }
}

V1Switch(TrivialParser(), TrivialVerify(), TrivialIngress(), TrivialEgress(), TrivialCompute(), TrivialDeparser()) main;
