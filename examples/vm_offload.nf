// vm_offload.nf — the reference scenario (docs/scenario.md): one VM behind
// the hypervisor, a programmable NIC, a VXLAN overlay and SNAT to the Internet.

const VM1_MAC = 02:00:00:00:01:02;
const VM1_IP = 10.0.1.2;
const VM1_IP6 = fd00:1::2;
const VTEP_MAC = 02:00:c0:a8:01:01;
const VTEP_IP = 192.168.1.1;
const REMOTE_VTEP_MAC = 02:00:c0:a8:01:02;
const REMOTE_VTEP_IP = 192.168.1.2;
const GATEWAY_MAC = 02:00:00:00:00:fe;
const PUBLIC_IP = 203.0.113.10;
const VNI = 5001;
const UNDERLAY_MTU = 1500;
const VM_MSS = 1460;
const TCP = 6;
const UDP = 17;

// ------------------------------------------------------------ vm_egress

// 1. TCP segmentation; MSS derived from the headers added downstream.
segment tso {
    mss = auto;
    max_mss = VM_MSS;
    underlay_mtu = UNDERLAY_MTU;
}

// 2. ACL towards the overlay and the Internet; everything else is dropped and counted.
nf acl_out {
    counter acl_out_drops;

    action allow() { }
    action deny() {
        count(acl_out_drops);
        drop();
    }

    @doc("IPv4 egress ACL: allow-list of the scenario; what no entry allows is dropped and counted")
    table acl_out_v4 {
        key = {
            ipv4.dst: ternary;
            ipv4.protocol: ternary;
            meta.l4_dst: range;
        }
        actions = { allow; deny; }
        default_action = deny();
        size = 256;
        counters = true;
    }

    table acl_out_v6 {
        key = {
            ipv6.dst: ternary;
            ipv6.next_hdr: ternary;
            meta.l4_dst: range;
        }
        actions = { allow; deny; }
        default_action = deny();
        size = 256;
        counters = true;
    }

    apply {
        if (ipv4.isValid()) {
            acl_out_v4.apply();
        } else if (ipv6.isValid()) {
            acl_out_v6.apply();
        } else {
            deny();
        }
    }
}

// 3. SNAT for IPv4 destinations outside the overlay.
nf snat {
    action no_snat() { }
    action snat_rewrite(public_ip: bit<32>, gateway_mac: bit<48>) {
        ipv4.src = public_ip;
        ethernet.dst = gateway_mac;
        dec_ttl();
    }

    table snat_v4 {
        key = { ipv4.dst: lpm; }
        actions = { snat_rewrite; no_snat; }
        default_action = no_snat();
        size = 64;
    }

    apply {
        if (ipv4.isValid()) {
            snat_v4.apply();
        }
    }
}

// 4. Per-flow counters on the 5-tuple as it leaves (after SNAT). Flows the
// control plane has not installed are counted together.
nf flow_counters {
    counter unknown_flows;

    action seen() { }
    action unknown() { count(unknown_flows); }

    @idle_timeout_ms(30000)
    table flows_v4 {
        key = {
            ipv4.src: exact;
            ipv4.dst: exact;
            ipv4.protocol: exact;
            meta.l4_src: exact;
            meta.l4_dst: exact;
        }
        actions = { seen; unknown; }
        default_action = unknown();
        size = 4096;
        counters = true;
        idle_timeout = true;
    }

    table flows_v6 {
        key = {
            ipv6.src: exact;
            ipv6.dst: exact;
            ipv6.next_hdr: exact;
            meta.l4_src: exact;
            meta.l4_dst: exact;
        }
        actions = { seen; unknown; }
        default_action = unknown();
        size = 4096;
        counters = true;
        idle_timeout = true;
    }

    apply {
        if (ipv4.isValid()) {
            flows_v4.apply();
        } else if (ipv6.isValid()) {
            flows_v6.apply();
        }
    }
}

// 5. VXLAN encapsulation for overlay destinations.
nf overlay_encap {
    action to_underlay() { }
    action encap(smac: bit<48>, dmac: bit<48>, sip: bit<32>, dip: bit<32>, vni: bit<24>) {
        vxlan_encap(smac, dmac, sip, dip, vni);
    }

    table overlay_v4 {
        key = { ipv4.dst: lpm; }
        actions = { encap; to_underlay; }
        default_action = to_underlay();
        size = 1024;
    }

    table overlay_v6 {
        key = { ipv6.dst: lpm; }
        actions = { encap; to_underlay; }
        default_action = to_underlay();
        size = 1024;
    }

    apply {
        if (ipv4.isValid()) {
            overlay_v4.apply();
        } else if (ipv6.isValid()) {
            overlay_v6.apply();
        }
    }
}

// ------------------------------------------------------------ vm_ingress

// 1. VXLAN decapsulation of VNI 5001 from the remote VTEP; other tunnels dropped.
nf overlay_decap {
    counter bad_tunnel;

    action decap() { vxlan_decap(); }
    action reject_tunnel() {
        count(bad_tunnel);
        drop();
    }

    table tunnels {
        key = {
            ipv4.src: exact;
            vxlan.vni: exact;
        }
        actions = { decap; reject_tunnel; }
        default_action = reject_tunnel();
        size = 64;
    }

    apply {
        if (vxlan.isValid()) {
            tunnels.apply();
        }
    }
}

// 2. DNAT of replies to the public address.
nf dnat {
    action no_dnat() { }
    action dnat_rewrite(private_ip: bit<32>, vm_mac: bit<48>) {
        ipv4.dst = private_ip;
        ethernet.dst = vm_mac;
    }

    table dnat_v4 {
        key = { ipv4.dst: exact; }
        actions = { dnat_rewrite; no_dnat; }
        default_action = no_dnat();
        size = 64;
    }

    apply {
        if (ipv4.isValid()) {
            dnat_v4.apply();
        }
    }
}

// 3. ACL towards the VM.
nf acl_in {
    counter acl_in_drops;

    action allow() { }
    action deny() {
        count(acl_in_drops);
        drop();
    }

    table acl_in_v4 {
        key = {
            ipv4.src: ternary;
            ipv4.protocol: ternary;
            meta.l4_src: range;
        }
        actions = { allow; deny; }
        default_action = deny();
        size = 256;
        counters = true;
    }

    table acl_in_v6 {
        key = {
            ipv6.src: ternary;
            ipv6.next_hdr: ternary;
            meta.l4_src: range;
        }
        actions = { allow; deny; }
        default_action = deny();
        size = 256;
        counters = true;
    }

    apply {
        if (ipv4.isValid()) {
            acl_in_v4.apply();
        } else if (ipv6.isValid()) {
            acl_in_v6.apply();
        } else {
            deny();
        }
    }
}

// 4. Receive coalescing, applied when the VM advertises LRO.
coalesce gro {
    max_size = 65535;
}

// ------------------------------------------------------------ pipelines and flows

pipeline vm_egress : vm_egress {
    tso -> acl_out -> snat -> flow_counters -> overlay_encap;
}

pipeline vm_ingress : vm_ingress {
    overlay_decap -> dnat -> acl_in -> gro;
}

flow vm1_tx {
    match ethernet.src == VM1_MAC;
    pipeline vm_egress;
}

flow vm1_rx {
    match vxlan.isValid() || ipv4.dst == PUBLIC_IP;
    pipeline vm_ingress;
}

// ------------------------------------------------------------ control-plane state

entries acl_out.acl_out_v4 {
    (10.0.2.0/24, TCP, 80..80) => allow() priority 100;
    (10.0.2.0/24, TCP, 443..443) => allow() priority 100;
    (_, UDP, 53..53) => allow() priority 90;
    (10.0.0.0/8, TCP, _) => deny() priority 50;
    (_, TCP, 443..443) => allow() priority 10;
}

entries acl_out.acl_out_v6 {
    (fd00:2::/64, TCP, 80..80) => allow() priority 100;
    (fd00:2::/64, TCP, 443..443) => allow() priority 100;
    (_, UDP, 53..53) => allow() priority 90;
}

entries snat.snat_v4 {
    (10.0.0.0/8) => no_snat();
    (0.0.0.0/0) => snat_rewrite(PUBLIC_IP, GATEWAY_MAC);
}

entries overlay_encap.overlay_v4 {
    (10.0.0.0/8) => encap(VTEP_MAC, REMOTE_VTEP_MAC, VTEP_IP, REMOTE_VTEP_IP, VNI);
}

entries overlay_encap.overlay_v6 {
    (fd00::/16) => encap(VTEP_MAC, REMOTE_VTEP_MAC, VTEP_IP, REMOTE_VTEP_IP, VNI);
}

entries overlay_decap.tunnels {
    (REMOTE_VTEP_IP, VNI) => decap();
}

entries dnat.dnat_v4 {
    (PUBLIC_IP) => dnat_rewrite(VM1_IP, VM1_MAC);
}

entries acl_in.acl_in_v4 {
    (10.0.2.0/24, TCP, 80..80) => allow() priority 100;
    (10.0.2.0/24, TCP, 443..443) => allow() priority 100;
    (_, UDP, 53..53) => allow() priority 90;
    (10.0.0.0/8, TCP, _) => deny() priority 50;
    (_, TCP, 443..443) => allow() priority 10;
}

entries acl_in.acl_in_v6 {
    (fd00:2::/64, TCP, 80..80) => allow() priority 100;
    (fd00:2::/64, TCP, 443..443) => allow() priority 100;
    (_, UDP, 53..53) => allow() priority 90;
}
