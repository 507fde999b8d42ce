// ipv6_only.nf — an IPv6-only VM network: no IPv4 table anywhere.
//
// vm_egress: anything that is not IPv6 is dropped and counted; packets whose
// hop limit would expire are punted to the hypervisor (ICMPv6 Time
// Exceeded); a ternary ACL on ULA / global prefixes filters what the VM may
// send; then forwarding: on-link neighbours (exact /128, aged out by the
// control plane through idle timeouts) or else an LPM route that selects a
// next hop, which supplies the MAC and port. The hop limit is decremented.
//
// vm_ingress: an inbound ACL, then delivery to the VM.

import "common.nf";

const VM1_MAC = 02:00:00:00:06:02;
const VM1_PORT = 3;
const VM1_IP6 = fd00:6::2;
const VM1_GUA = 2001:db8:6::2;
const ROUTER_MAC = 02:00:00:00:06:01;
const NH_UPSTREAM_A = 1;
const NH_UPSTREAM_B = 2;
const SPINE_A_MAC = 02:00:0a:06:ff:01;
const SPINE_B_MAC = 02:00:0a:06:ff:02;
const PEER_MAC = 02:00:00:00:06:09;

metadata {
    nexthop_id: bit<16>;
}

// ------------------------------------------------------------ vm_egress

// 1. IPv6 only, and hop-limit expiry.
@pin(hypervisor)
nf v6_guard {
    counter not_ipv6;
    counter hop_limit_expired;

    action reject_family() {
        count(not_ipv6);
        drop();
    }
    action expired() {
        count(hop_limit_expired);
        to_hypervisor(PUNT_TTL_EXPIRED);
    }

    apply {
        if (!ipv6.isValid()) {
            reject_family();
        } else if (ipv6.hop_limit <= 1) {
            expired();
        }
    }
}

// 2. Outbound ACL.
@prefer(nic)
nf acl6_out {
    counter acl6_out_drops;

    action allow() { }
    action deny() {
        count(acl6_out_drops);
        drop();
    }

    table acl6_out {
        key = {
            ipv6.src: ternary;
            ipv6.dst: ternary;
            ipv6.next_hdr: ternary;
            meta.l4_dst: range;
        }
        actions = { allow; deny; }
        default_action = deny();
        size = 512;
        counters = true;
    }

    apply {
        acl6_out.apply();
    }
}

// 3. Forwarding: neighbours first, then routes through a next-hop table.
@prefer(nic)
nf fwd6 {
    counter no_route;

    action to_neighbor(dmac: bit<48>, port: bit<9>) {
        ethernet.src = ROUTER_MAC;
        ethernet.dst = dmac;
        ipv6.hop_limit = ipv6.hop_limit - 1;
        forward(port);
    }
    action via(nexthop: bit<16>) {
        meta.nexthop_id = nexthop;
        dec_ttl();
    }
    action unroutable() {
        count(no_route);
        to_hypervisor(PUNT_NO_ROUTE);
    }
    // Not a neighbour: the routes decide (a miss must not punt on its own).
    action not_neighbor() { }
    action send(dmac: bit<48>, port: bit<9>) {
        ethernet.src = ROUTER_MAC;
        ethernet.dst = dmac;
        forward(port);
    }

    @idle_timeout_ms(300000)
    table neighbors {
        key = { ipv6.dst: exact; }
        actions = { to_neighbor; not_neighbor; }
        default_action = not_neighbor();
        size = 2048;
        idle_timeout = true;
    }

    table routes6 {
        key = { ipv6.dst: lpm; }
        actions = { via; unroutable; }
        default_action = unroutable();
        size = 8192;
        counters = true;
    }

    table nexthops {
        key = { meta.nexthop_id: exact; }
        actions = { send; unroutable; }
        default_action = unroutable();
        size = 64;
    }

    apply {
        if (neighbors.apply().miss) {
            if (routes6.apply().hit) {
                nexthops.apply();
            }
        }
    }
}

// ------------------------------------------------------------ vm_ingress

// 1. Inbound ACL.
@prefer(nic)
nf acl6_in {
    counter acl6_in_drops;

    action allow() { }
    action deny() {
        count(acl6_in_drops);
        drop();
    }

    table acl6_in {
        key = {
            ipv6.src: ternary;
            ipv6.next_hdr: ternary;
            meta.l4_dst: range;
        }
        actions = { allow; deny; }
        default_action = deny();
        size = 512;
        counters = true;
    }

    apply {
        if (ipv6.isValid()) {
            acl6_in.apply();
        } else {
            deny();
        }
    }
}

// 2. Delivery to the VM.
nf deliver6 {
    action to_vm(port: bit<9>) {
        ethernet.src = ROUTER_MAC;
        ethernet.dst = VM1_MAC;
        dec_ttl();
        forward(port);
    }
    action not_mine() { drop(); }

    table local6 {
        key = { ipv6.dst: exact; }
        actions = { to_vm; not_mine; }
        default_action = not_mine();
        size = 16;
    }

    apply {
        local6.apply();
    }
}

// ------------------------------------------------------------ pipelines and flows

pipeline v6_out : vm_egress {
    v6_guard -> acl6_out -> fwd6;
}

pipeline v6_in : vm_ingress {
    acl6_in -> deliver6;
}

flow vm1_tx {
    match ethernet.src == VM1_MAC;
    pipeline v6_out;
}

flow vm1_rx {
    match ethernet.dst == ROUTER_MAC;
    pipeline v6_in;
}

// ------------------------------------------------------------ control-plane state

// Columns: (src, dst, next header, destination ports).
entries acl6_out.acl6_out {
    (fd00:6::/64, fd00::/16, PROTO_TCP, 443..443) => allow() priority 100;
    (fd00:6::/64, fd00::/16, PROTO_TCP, 22..22) => deny() priority 110;
    (fd00:6::/64, fd00::/16, PROTO_UDP, 53..53) => allow() priority 100;
    (2001:db8:6::/48, 2000::/3, PROTO_TCP, 443..443) => allow() priority 90;
    (2001:db8:6::/48, 2000::/3, PROTO_UDP, 123..123) => allow() priority 90;
    (_, _, PROTO_ICMPV6, _) => allow() priority 80;
    (_, ff02::/16, PROTO_UDP, 546..547) => allow() priority 70;   // DHCPv6
    (fe80::/10, _, _, _) => allow() priority 60;                   // link-local
}

entries fwd6.neighbors {
    (fd00:6::9) => to_neighbor(PEER_MAC, 4);
}

entries fwd6.routes6 {
    (fd00::/16) => via(NH_UPSTREAM_A);
    (2001:db8:7::/48) => via(NH_UPSTREAM_B);
    (2000::/3) => via(NH_UPSTREAM_A);
    (::/0) => unroutable();
}

entries fwd6.nexthops {
    (NH_UPSTREAM_A) => send(SPINE_A_MAC, UPLINK0);
    (NH_UPSTREAM_B) => send(SPINE_B_MAC, UPLINK1);
}

entries acl6_in.acl6_in {
    (fd00::/16, PROTO_TCP, 22..22) => allow() priority 100;
    (_, PROTO_TCP, 443..443) => allow() priority 90;
    (_, PROTO_ICMPV6, _) => allow() priority 80;
    (fd00:bad::/32, _, _) => deny() priority 200;
}

entries deliver6.local6 {
    (VM1_IP6) => to_vm(VM1_PORT);
    (VM1_GUA) => to_vm(VM1_PORT);
}
