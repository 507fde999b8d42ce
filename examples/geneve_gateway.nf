// geneve_gateway.nf — a Geneve (RFC 8926) overlay gateway for the VMs of a host.
//
// vm_egress: the VM's traffic is classified into a QoS class (DSCP) by the
// service tag a VM-side appliance puts after the Ethernet header (the custom
// `mytag` header, EtherType 0x88b5, IEEE "local experimental"), then
// encapsulated in Geneve toward the remote hypervisor that hosts the inner
// destination (longest-prefix match on the inner IPv4/IPv6 destination),
// with an 802.1Q tag for the underlay VLAN where the fabric needs one.
//
// vm_ingress: the underlay VLAN tag, if any, is removed, and Geneve packets
// are decapsulated only when they come from a known remote hypervisor on the
// expected VNI (outer ipv4.src + geneve.vni); other tunnels are dropped and
// counted.

import "common.nf";

const VM1_MAC = 02:00:00:00:01:02;
const VM1_PORT = 2;
const VNI_TENANT_A = 7001;
const VNI_TENANT_B = 7002;
const UNDERLAY_VID = 100;
const REMOTE_HV1_IP = 192.168.2.11;
const REMOTE_HV1_MAC = 02:00:c0:a8:02:0b;
const REMOTE_HV2_IP = 192.168.3.12;
const REMOTE_HV2_MAC = 02:00:c0:a8:03:0c;
const TAG_ETHERTYPE = 0x88b5;

// ------------------------------------------------------------ packet format

// Service tag: 6 bytes after Ethernet; ether_type names what follows it.
header mytag {
    tenant: bit<16>;
    qos_class: bit<4>;
    reserved: bit<4>;
    flags: bit<8>;
    ether_type: bit<16>;
}

packet {
    mytag: mytag;
}

parser {
    // The standard start state plus the service tag's EtherType.
    override state start {
        extract(ethernet);
        transition select(ethernet.ether_type) {
            TAG_ETHERTYPE: mytag;
            0x8100: vlan;
            0x0800: ipv4;
            0x86dd: ipv6;
            default: accept;
        }
    }
    state mytag {
        extract(mytag);
        transition select(mytag.ether_type) {
            0x8100: vlan;
            0x0800: ipv4;
            0x86dd: ipv6;
            default: accept;
        }
    }
}

// ------------------------------------------------------------ vm_egress

// 1. QoS: DSCP from the tenant and class in the service tag.
@prefer(nic)
nf qos {
    action keep() { }
    action mark(dscp: bit<6>) { set_dscp(dscp); }

    table qos_class {
        key = {
            mytag.tenant: exact;
            mytag.qos_class: ternary;
        }
        actions = { mark; keep; }
        default_action = mark(DSCP_BEST_EFFORT);
        size = 512;
    }

    apply {
        if (mytag.isValid()) {
            qos_class.apply();
        }
    }
}

// 2. Geneve encapsulation toward the hypervisor hosting the destination.
@prefer(nic)
nf geneve_out {
    counter no_endpoint;

    action encap(hv_mac: bit<48>, hv_ip: bit<32>, vni: bit<24>) {
        geneve_encap(HOST_MAC, hv_mac, HOST_IP, hv_ip, vni);
    }
    action encap_vlan(hv_mac: bit<48>, hv_ip: bit<32>, vni: bit<24>, vid: bit<12>) {
        geneve_encap(HOST_MAC, hv_mac, HOST_IP, hv_ip, vni, 64, PORT_GENEVE);
        push_vlan(vid, 5);
    }
    action unknown_endpoint() {
        count(no_endpoint);
        to_hypervisor(PUNT_UNKNOWN_TUNNEL);
    }

    table endpoints_v4 {
        key = { ipv4.dst: lpm; }
        actions = { encap; encap_vlan; unknown_endpoint; }
        default_action = unknown_endpoint();
        size = 4096;
        counters = true;
    }

    table endpoints_v6 {
        key = { ipv6.dst: lpm; }
        actions = { encap; encap_vlan; unknown_endpoint; }
        default_action = unknown_endpoint();
        size = 4096;
        counters = true;
    }

    apply {
        if (ipv4.isValid()) {
            endpoints_v4.apply();
        } else if (ipv6.isValid()) {
            endpoints_v6.apply();
        } else {
            unknown_endpoint();
        }
    }
}

// ------------------------------------------------------------ vm_ingress

// 1. Underlay VLAN removal.
nf underlay_untag {
    action untag() { pop_vlan(); }

    apply {
        if (vlan[0].isValid()) {
            untag();
        }
    }
}

// 2. Geneve decapsulation of known tunnels, then delivery to the VM.
@pin(hypervisor)
nf geneve_in {
    counter bad_tunnel;

    action decap(port: bit<9>) {
        geneve_decap();
        forward(port);
    }
    action reject_tunnel() {
        count(bad_tunnel);
        drop();
    }

    table tunnels {
        key = {
            ipv4.src: exact;
            geneve.vni: exact;
        }
        actions = { decap; reject_tunnel; }
        default_action = reject_tunnel();
        size = 256;
        counters = true;
    }

    apply {
        if (geneve.isValid()) {
            tunnels.apply();
        } else {
            reject_tunnel();
        }
    }
}

// ------------------------------------------------------------ pipelines and flows

pipeline overlay_tx : vm_egress {
    qos -> geneve_out;
}

pipeline overlay_rx : vm_ingress {
    underlay_untag -> geneve_in;
}

flow vm1_tx {
    match ethernet.src == VM1_MAC;
    pipeline overlay_tx;
}

flow geneve_rx {
    match geneve.isValid();
    pipeline overlay_rx;
}

// ------------------------------------------------------------ control-plane state

// Columns: (tenant, QoS class).
entries qos.qos_class {
    (1, 0 &&& 0) => mark(DSCP_BEST_EFFORT) priority 1;
    (1, 1 &&& 15) => mark(DSCP_AF21) priority 10;
    (1, 2 &&& 15) => mark(DSCP_AF41) priority 10;
    (1, 8 &&& 8) => mark(DSCP_EF) priority 20;       // any class with the top bit: voice
    (2, _) => keep() priority 1;                     // tenant 2 marks its own traffic
}

entries geneve_out.endpoints_v4 {
    (10.1.0.0/16) => encap(REMOTE_HV1_MAC, REMOTE_HV1_IP, VNI_TENANT_A);
    (10.2.0.0/16) => encap_vlan(REMOTE_HV2_MAC, REMOTE_HV2_IP, VNI_TENANT_B, UNDERLAY_VID);
    (10.2.7.0/24) => encap(REMOTE_HV1_MAC, REMOTE_HV1_IP, VNI_TENANT_B);
}

entries geneve_out.endpoints_v6 {
    (fd00:a::/48) => encap(REMOTE_HV1_MAC, REMOTE_HV1_IP, VNI_TENANT_A);
    (fd00:b::/48) => encap_vlan(REMOTE_HV2_MAC, REMOTE_HV2_IP, VNI_TENANT_B, UNDERLAY_VID);
}

entries geneve_in.tunnels {
    (REMOTE_HV1_IP, VNI_TENANT_A) => decap(VM1_PORT);
    (REMOTE_HV1_IP, VNI_TENANT_B) => decap(VM1_PORT);
    (REMOTE_HV2_IP, VNI_TENANT_B) => decap(VM1_PORT);
}
