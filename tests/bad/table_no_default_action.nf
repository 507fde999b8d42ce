// EXPECT: 5:11: error: table 'acl_v4' has no default_action
// Every table needs a default_action.
nf acl {
    action allow() { }
    table acl_v4 {
        key = { ipv4.dst: exact; }
        actions = { allow; }
    }
    apply { acl_v4.apply(); }
}
