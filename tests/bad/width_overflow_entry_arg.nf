// EXPECT: 15:27: error: value 300 does not fit in parameter 'ttl' of action 'set_ttl' (bit<8>)
// An entry passes 300 to an action parameter declared bit<8>.
nf ttl_set {
    action set_ttl(ttl: bit<8>) { ipv4.ttl = ttl; }
    table by_dst {
        key = { ipv4.dst: exact; }
        actions = { set_ttl; }
        default_action = set_ttl(64);
    }
    apply { by_dst.apply(); }
}

entries ttl_set.by_dst {
    (10.0.0.1) => set_ttl(64);
    (10.0.0.2) => set_ttl(300);
}
