// EXPECT: 14:6: error: an IPv6 address is 128 bits; the key is bit<32>
// An IPv6 address as the value of an IPv4 key.
nf acl {
    action allow() { }
    table by_dst {
        key = { ipv4.dst: exact; }
        actions = { allow; }
        default_action = allow();
    }
    apply { by_dst.apply(); }
}

entries acl.by_dst {
    (fd00::1) => allow();
}
