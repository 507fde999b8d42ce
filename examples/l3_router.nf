// l3_router.nf — the NIC as the first-hop IPv4/IPv6 router of a VM.
//
// vm_egress: packets from the VM (addressed to the virtual gateway MAC) are
// routed by longest-prefix match: the next hop's MAC is written, TTL / hop
// limit decremented and the packet sent out of the chosen uplink. Packets
// whose TTL would expire are punted to the hypervisor, which answers with
// ICMP Time Exceeded; destinations without a route are punted too.
//
// vm_ingress: packets from the uplinks to the VM's addresses get the VM's
// MAC and the gateway's MAC and are delivered to the VM's representor port.

import "common.nf";

const VM1_MAC = 02:00:00:00:01:02;
const VM1_PORT = 2;
const VM1_IP = 10.0.1.2;
const VM1_IP6 = fd00:1::2;
const GATEWAY_MAC = 02:00:00:00:00:01;   // virtual gateway the VM sends to
const NH_SPINE_A = 02:00:0a:00:ff:01;    // next hop behind uplink 0
const NH_SPINE_B = 02:00:0a:00:ff:02;    // next hop behind uplink 1

// ------------------------------------------------------------ vm_egress

// 1. TTL / hop-limit expiry. The hypervisor generates the ICMP error, so this
// stage stays on the host side of the split.
@pin(hypervisor)
nf ttl_check {
    counter ttl_expired;

    action expired() {
        count(ttl_expired);
        to_hypervisor(PUNT_TTL_EXPIRED);
    }

    apply {
        if (ipv4.isValid() && ipv4.ttl <= 1) {
            expired();
        } else if (ipv6.isValid() && ipv6.hop_limit <= 1) {
            expired();
        }
    }
}

// 2. Longest-prefix-match routing for both address families.
@prefer(nic)
nf router {
    counter no_route;

    action route(nh_mac: bit<48>, port: bit<9>) {
        ethernet.src = HOST_MAC;
        ethernet.dst = nh_mac;
        dec_ttl();
        forward(port);
    }
    action unroutable() {
        count(no_route);
        to_hypervisor(PUNT_NO_ROUTE);
    }
    action blackhole() {
        count(no_route);
        drop();
    }

    table routes_v4 {
        key = { ipv4.dst: lpm; }
        actions = { route; unroutable; blackhole; }
        default_action = unroutable();
        size = 16384;
        counters = true;
    }

    table routes_v6 {
        key = { ipv6.dst: lpm; }
        actions = { route; unroutable; blackhole; }
        default_action = unroutable();
        size = 8192;
        counters = true;
    }

    apply {
        if (ipv4.isValid()) {
            routes_v4.apply();
        } else if (ipv6.isValid()) {
            routes_v6.apply();
        } else {
            blackhole();
        }
    }
}

// ------------------------------------------------------------ vm_ingress

// 3. Delivery to the VM: the host routes of the VM's addresses.
nf deliver {
    counter not_local;

    action to_vm(vm_mac: bit<48>, port: bit<9>) {
        ethernet.src = GATEWAY_MAC;
        ethernet.dst = vm_mac;
        dec_ttl();
        forward(port);
    }
    action not_mine() {
        count(not_local);
        drop();
    }

    table local_v4 {
        key = { ipv4.dst: lpm; }
        actions = { to_vm; not_mine; }
        default_action = not_mine();
        size = 256;
    }

    table local_v6 {
        key = { ipv6.dst: lpm; }
        actions = { to_vm; not_mine; }
        default_action = not_mine();
        size = 256;
    }

    apply {
        if (ipv4.isValid()) {
            local_v4.apply();
        } else if (ipv6.isValid()) {
            local_v6.apply();
        } else {
            not_mine();
        }
    }
}

// ------------------------------------------------------------ pipelines and flows

pipeline routed_out : vm_egress {
    ttl_check -> router;
}

pipeline routed_in : vm_ingress {
    deliver;
}

flow vm1_tx {
    match (ethernet.src == VM1_MAC) && (ethernet.dst == GATEWAY_MAC);
    pipeline routed_out;
}

flow vm1_rx {
    match (ipv4.dst == VM1_IP) || (ipv6.dst == VM1_IP6);
    pipeline routed_in;
}

// ------------------------------------------------------------ control-plane state

entries router.routes_v4 {
    (10.0.1.0/24) => unroutable();                 // the VM's own subnet: hairpin via the host
    (10.0.0.0/8) => route(NH_SPINE_A, UPLINK0);
    (172.16.0.0/12) => route(NH_SPINE_B, UPLINK1);
    (192.0.2.0/24) => blackhole();                 // TEST-NET-1 is never routed
    (198.51.100.0/24) => route(NH_SPINE_B, UPLINK1);
    (0.0.0.0/0) => route(NH_SPINE_A, UPLINK0);
}

entries router.routes_v6 {
    (fd00:1::/64) => unroutable();
    (fd00::/8) => route(NH_SPINE_A, UPLINK0);
    (2001:db8::/32) => blackhole();                // documentation prefix
    (::/0) => route(NH_SPINE_B, UPLINK1);
}

entries deliver.local_v4 {
    (10.0.1.2/32) => to_vm(VM1_MAC, VM1_PORT);
}

entries deliver.local_v6 {
    (fd00:1::2/128) => to_vm(VM1_MAC, VM1_PORT);
}
