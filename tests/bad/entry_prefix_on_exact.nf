// EXPECT: 14:6: error: a prefix is for lpm or ternary keys; 'ipv4.dst' is exact
// A prefix given for an exact key.
nf dnat {
    action allow() { }
    table by_dst {
        key = { ipv4.dst: exact; }
        actions = { allow; }
        default_action = allow();
    }
    apply { by_dst.apply(); }
}

entries dnat.by_dst {
    (203.0.113.0/24) => allow();
}
