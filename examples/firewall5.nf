// firewall5.nf — a stateless 5-tuple firewall for one VM, in both directions.
//
// Each direction has an IPv4 and an IPv6 rule table matching source and
// destination address (ternary: prefixes or value &&& mask), the protocol
// (ternary, so a rule may leave it open) and source/destination port ranges
// (range on meta.l4_src / meta.l4_dst, which the standard parser fills from
// TCP or UDP). Rules are ordered by priority; higher wins. Whatever no rule
// allows is dropped and counted per direction, and every rule has a
// per-entry packet counter (counters = true) for the control plane.
//
// Being stateless, return traffic must be allowed explicitly: the inbound
// rules accept TCP/UDP replies to the VM's ephemeral ports.

import "common.nf";

const VM1_MAC = 02:00:00:00:01:02;
const VM1_IP = 10.0.1.2;
const VM1_IP6 = fd00:1::2;
const DNS_RESOLVER = 10.0.0.53;
const DNS_RESOLVER6 = fd00::53;
const NTP_SERVER = 10.0.0.123;

// ------------------------------------------------------------ vm_egress

@prefer(nic)
nf fw_out {
    counter fw_out_drops;

    action permit() { }
    action deny() {
        count(fw_out_drops);
        drop();
    }
    // Rejected traffic the operator wants to see: the hypervisor logs it.
    action log_deny() {
        count(fw_out_drops);
        to_hypervisor(PUNT_ACL);
    }

    table fw_out_v4 {
        key = {
            ipv4.src: ternary;
            ipv4.dst: ternary;
            ipv4.protocol: ternary;
            meta.l4_src: range;
            meta.l4_dst: range;
        }
        actions = { permit; deny; log_deny; }
        default_action = deny();
        size = 1024;
        counters = true;
    }

    table fw_out_v6 {
        key = {
            ipv6.src: ternary;
            ipv6.dst: ternary;
            ipv6.next_hdr: exact;
            meta.l4_src: range;
            meta.l4_dst: range;
        }
        actions = { permit; deny; log_deny; }
        default_action = deny();
        size = 1024;
        counters = true;
    }

    apply {
        if (ipv4.isValid()) {
            fw_out_v4.apply();
        } else if (ipv6.isValid()) {
            fw_out_v6.apply();
        } else {
            deny();
        }
    }
}

// ------------------------------------------------------------ vm_ingress

@prefer(nic)
nf fw_in {
    counter fw_in_drops;

    action permit() { }
    action deny() {
        count(fw_in_drops);
        drop();
    }

    table fw_in_v4 {
        key = {
            ipv4.src: ternary;
            ipv4.dst: ternary;
            ipv4.protocol: ternary;
            meta.l4_src: range;
            meta.l4_dst: range;
        }
        actions = { permit; deny; }
        default_action = deny();
        size = 1024;
        counters = true;
    }

    table fw_in_v6 {
        key = {
            ipv6.src: ternary;
            ipv6.dst: ternary;
            ipv6.next_hdr: exact;
            meta.l4_src: range;
            meta.l4_dst: range;
        }
        actions = { permit; deny; }
        default_action = deny();
        size = 1024;
        counters = true;
    }

    apply {
        if (ipv4.isValid()) {
            fw_in_v4.apply();
        } else if (ipv6.isValid()) {
            fw_in_v6.apply();
        } else {
            deny();
        }
    }
}

// ------------------------------------------------------------ pipelines and flows

pipeline fw_egress : vm_egress {
    fw_out;
}

pipeline fw_ingress : vm_ingress {
    fw_in;
}

flow vm1_tx {
    match ethernet.src == VM1_MAC;
    pipeline fw_egress;
}

flow vm1_rx {
    match ethernet.dst == VM1_MAC;
    pipeline fw_ingress;
}

// ------------------------------------------------------------ control-plane state

// Columns: (src, dst, protocol, src ports, dst ports).
entries fw_out.fw_out_v4 {
    (VM1_IP, DNS_RESOLVER, PROTO_UDP, 32768..65535, 53..53) => permit() priority 200;
    (VM1_IP, DNS_RESOLVER, PROTO_TCP, 32768..65535, 53..53) => permit() priority 200;
    (VM1_IP, NTP_SERVER, PROTO_UDP, 123..123, 123..123) => permit() priority 200;
    (VM1_IP, 10.0.0.0/8, PROTO_TCP, _, 22..22) => log_deny() priority 150;   // no SSH east-west
    (VM1_IP, 10.0.2.0/24, PROTO_TCP, _, 80..80) => permit() priority 100;
    (VM1_IP, 10.0.2.0/24, PROTO_TCP, _, 443..443) => permit() priority 100;
    (VM1_IP, _, PROTO_TCP, _, 443..443) => permit() priority 50;
    (VM1_IP, _, PROTO_ICMP, _, _) => permit() priority 40;
    (10.0.1.0 &&& 255.255.255.0, 0.0.0.0 &&& 0.0.0.0, _, _, _) => log_deny() priority 1;
}

entries fw_out.fw_out_v6 {
    (VM1_IP6, DNS_RESOLVER6, PROTO_UDP, 32768..65535, 53..53) => permit() priority 200;
    (VM1_IP6, fd00:2::/64, PROTO_TCP, _, 443..443) => permit() priority 100;
    (VM1_IP6, fd00::/16, PROTO_TCP, _, 22..22) => log_deny() priority 150;
    (VM1_IP6, _, PROTO_ICMPV6, _, _) => permit() priority 40;
}

entries fw_in.fw_in_v4 {
    (DNS_RESOLVER, VM1_IP, PROTO_UDP, 53..53, 32768..65535) => permit() priority 200;
    (DNS_RESOLVER, VM1_IP, PROTO_TCP, 53..53, 32768..65535) => permit() priority 200;
    (NTP_SERVER, VM1_IP, PROTO_UDP, 123..123, 123..123) => permit() priority 200;
    (10.0.2.0/24, VM1_IP, PROTO_TCP, 80..80, 32768..65535) => permit() priority 100;
    (10.0.2.0/24, VM1_IP, PROTO_TCP, 443..443, 32768..65535) => permit() priority 100;
    (_, VM1_IP, PROTO_TCP, 443..443, 32768..65535) => permit() priority 50;
    (10.0.0.0/8, VM1_IP, PROTO_TCP, _, 22..22) => permit() priority 60;      // SSH from the admin network
    (_, VM1_IP, PROTO_ICMP, _, _) => permit() priority 40;
    (_, VM1_IP, 0 &&& 0, 0..1023, _) => deny() priority 5;
}

entries fw_in.fw_in_v6 {
    (DNS_RESOLVER6, VM1_IP6, PROTO_UDP, 53..53, 32768..65535) => permit() priority 200;
    (fd00:2::/64, VM1_IP6, PROTO_TCP, 443..443, 32768..65535) => permit() priority 100;
    (fd00:ff:: &&& ffff:ffff:ffff:ffff::, VM1_IP6, PROTO_TCP, _, 22..22) => permit() priority 60;
    (_, VM1_IP6, PROTO_ICMPV6, _, _) => permit() priority 40;
}
