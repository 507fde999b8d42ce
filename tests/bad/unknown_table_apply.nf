// EXPECT: 12:9: error: unknown table 'acl_v6' in nf 'acl'
// The apply block applies a table the nf does not declare.
nf acl {
    action allow() { }
    table acl_v4 {
        key = { ipv4.dst: exact; }
        actions = { allow; }
        default_action = allow();
    }
    apply {
        acl_v4.apply();
        acl_v6.apply();
    }
}
