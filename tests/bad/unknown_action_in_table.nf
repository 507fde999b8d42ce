// EXPECT: 7:28: error: unknown action 'deny' in table 'acl_v4'
// The actions list of a table names an action the nf does not have.
nf acl {
    action allow() { }
    table acl_v4 {
        key = { ipv4.dst: exact; }
        actions = { allow; deny; }
        default_action = allow();
    }
    apply { acl_v4.apply(); }
}
