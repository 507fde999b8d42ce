// EXPECT: 15:13: error: table 'acl_v4' is applied more than once; P4 allows one apply per table
// A table may be applied only once per nf.
nf acl {
    action allow() { }
    action deny() { drop(); }
    table acl_v4 {
        key = { ipv4.dst: exact; }
        actions = { allow; deny; }
        default_action = allow();
    }
    apply {
        if (ipv4.ttl > 1) {
            acl_v4.apply();
        } else {
            acl_v4.apply();
        }
    }
}
