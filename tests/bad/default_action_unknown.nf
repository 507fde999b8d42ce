// EXPECT: 8:26: error: unknown action 'reject'
// The default action names an action that does not exist at all.
nf acl {
    action allow() { }
    table acl_v4 {
        key = { ipv4.dst: exact; }
        actions = { allow; }
        default_action = reject();
    }
    apply { acl_v4.apply(); }
}
