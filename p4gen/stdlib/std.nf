// p4gen standard library: the built-in header layouts, header instances,
// metadata and parser. Every program is checked as if it imported this file.
//
// This is the single definition of packet formats in p4gen: the P4 emitter,
// the hypervisor pipeline and the IR's size computations all read these
// declarations. Field widths are exact wire layouts, most significant bit first.

header ethernet {
    dst: bit<48>;
    src: bit<48>;
    ether_type: bit<16>;
}

// 802.1Q tag; its TPID (0x8100) is the ether_type of the header before it.
header vlan {
    pcp: bit<3>;
    dei: bit<1>;
    vid: bit<12>;
    ether_type: bit<16>;
}

header ipv4 {
    version: bit<4>;
    ihl: bit<4>;
    dscp: bit<6>;
    ecn: bit<2>;
    total_len: bit<16>;
    identification: bit<16>;
    flags: bit<3>;
    frag_offset: bit<13>;
    ttl: bit<8>;
    protocol: bit<8>;
    hdr_checksum: bit<16>;
    src: bit<32>;
    dst: bit<32>;
    options: varbit<320> length = ihl * 32 - 160;
}

header ipv6 {
    version: bit<4>;
    traffic_class: bit<8>;
    flow_label: bit<20>;
    payload_len: bit<16>;
    next_hdr: bit<8>;
    hop_limit: bit<8>;
    src: bit<128>;
    dst: bit<128>;
}

// flags, most significant first: CWR ECE URG ACK PSH RST SYN FIN.
header tcp {
    src_port: bit<16>;
    dst_port: bit<16>;
    seq_no: bit<32>;
    ack_no: bit<32>;
    data_offset: bit<4>;
    res: bit<4>;
    flags: bit<8>;
    window: bit<16>;
    checksum: bit<16>;
    urgent_ptr: bit<16>;
    options: varbit<320> length = data_offset * 32 - 160;
}

header udp {
    src_port: bit<16>;
    dst_port: bit<16>;
    length: bit<16>;
    checksum: bit<16>;
}

header icmp {
    type: bit<8>;
    code: bit<8>;
    checksum: bit<16>;
    rest: bit<32>;
}

// RFC 7348; flags 0x08 means "VNI valid".
header vxlan {
    flags: bit<8>;
    reserved: bit<24>;
    vni: bit<24>;
    reserved2: bit<8>;
}

// RFC 8926; opt_len counts 4-byte words of options.
header geneve {
    version: bit<2>;
    opt_len: bit<6>;
    oam: bit<1>;
    critical: bit<1>;
    reserved: bit<6>;
    protocol_type: bit<16>;
    vni: bit<24>;
    reserved2: bit<8>;
    options: varbit<2016> length = opt_len * 32;
}

// Header instances of a packet. After a tunnel decapsulation the inner
// headers take the place of the outer ones, so `ipv4` always names the
// outermost IPv4 header the packet has at that point.
packet {
    ethernet: ethernet;
    vlan: vlan[2];
    ipv4: ipv4;
    ipv6: ipv6;
    icmp: icmp;
    tcp: tcp;
    udp: udp;
    vxlan: vxlan;
    geneve: geneve;
    inner_ethernet: ethernet;
    inner_ipv4: ipv4;
    inner_ipv6: ipv6;
    inner_icmp: icmp;
    inner_tcp: tcp;
    inner_udp: udp;
}

// meta.ingress_port is set by the target; l4_src/l4_dst hold the ports of
// the innermost TCP or UDP header the parser found (0 when there is none).
metadata {
    ingress_port: bit<9>;
    l4_src: bit<16>;
    l4_dst: bit<16>;
}

parser {
    state start {
        extract(ethernet);
        transition select(ethernet.ether_type) {
            0x8100: vlan;
            0x0800: ipv4;
            0x86dd: ipv6;
            default: accept;
        }
    }
    state vlan {
        extract(vlan.next);
        transition select(vlan.last.ether_type) {
            0x8100: vlan;
            0x0800: ipv4;
            0x86dd: ipv6;
            default: accept;
        }
    }
    state ipv4 {
        extract(ipv4);
        transition select(ipv4.frag_offset, ipv4.protocol) {
            (0, 6): tcp;
            (0, 17): udp;
            (0, 1): icmp;
            default: accept;
        }
    }
    state ipv6 {
        extract(ipv6);
        transition select(ipv6.next_hdr) {
            6: tcp;
            17: udp;
            58: icmp;
            default: accept;
        }
    }
    state icmp {
        extract(icmp);
        transition accept;
    }
    state tcp {
        extract(tcp);
        meta.l4_src = tcp.src_port;
        meta.l4_dst = tcp.dst_port;
        transition accept;
    }
    state udp {
        extract(udp);
        meta.l4_src = udp.src_port;
        meta.l4_dst = udp.dst_port;
        transition select(udp.dst_port) {
            4789: vxlan;
            6081: geneve;
            default: accept;
        }
    }
    state vxlan {
        extract(vxlan);
        transition inner_ethernet;
    }
    state geneve {
        extract(geneve);
        transition select(geneve.protocol_type) {
            0x6558: inner_ethernet;
            default: accept;
        }
    }
    state inner_ethernet {
        extract(inner_ethernet);
        transition select(inner_ethernet.ether_type) {
            0x0800: inner_ipv4;
            0x86dd: inner_ipv6;
            default: accept;
        }
    }
    state inner_ipv4 {
        extract(inner_ipv4);
        transition select(inner_ipv4.frag_offset, inner_ipv4.protocol) {
            (0, 6): inner_tcp;
            (0, 17): inner_udp;
            (0, 1): inner_icmp;
            default: accept;
        }
    }
    state inner_ipv6 {
        extract(inner_ipv6);
        transition select(inner_ipv6.next_hdr) {
            6: inner_tcp;
            17: inner_udp;
            58: inner_icmp;
            default: accept;
        }
    }
    state inner_icmp {
        extract(inner_icmp);
        transition accept;
    }
    state inner_tcp {
        extract(inner_tcp);
        meta.l4_src = inner_tcp.src_port;
        meta.l4_dst = inner_tcp.dst_port;
        transition accept;
    }
    state inner_udp {
        extract(inner_udp);
        meta.l4_src = inner_udp.src_port;
        meta.l4_dst = inner_udp.dst_port;
        transition accept;
    }
}
