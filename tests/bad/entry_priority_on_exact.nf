// EXPECT: 15:48: error: table 'dnat_v4' has only exact/lpm keys; entries take no priority
// Entries of an exact-only table take no priority.
nf dnat {
    action to_vm(ip: bit<32>) { ipv4.dst = ip; }
    action keep() { }
    table dnat_v4 {
        key = { ipv4.dst: exact; }
        actions = { to_vm; keep; }
        default_action = keep();
    }
    apply { dnat_v4.apply(); }
}

entries dnat.dnat_v4 {
    (203.0.113.10) => to_vm(10.0.1.2) priority 10;
}
